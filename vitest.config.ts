import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['**/test/**/*.test.ts'],
    // *.xen.test.ts boot a nested Xen and take many minutes: `npm run test:xen` runs them (MCL_TEST_XEN=1).
    exclude: ['**/node_modules/**', '**/dist/**', ...(process.env.MCL_TEST_XEN === '1' ? [] : ['**/*.xen.test.ts'])],
    // Two cores: forks keep QEMU-heavy files from starving each other less than threads would.
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 120_000,
    reporters: ['default'],
  },
});
