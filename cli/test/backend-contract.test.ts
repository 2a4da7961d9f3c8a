// The KVM backend implements the interface mclc calls (plan/src/backend.ts).
// The assignment below is checked by the type checker (`npm run typecheck`);
// the test checks the same at run time.

import * as kvm from '@mcl/backend-kvm';
import { describe, expect, it } from 'vitest';
import { BACKEND_FUNCTIONS, type BackendModule } from '@mcl/plan/backend';

const implementation: BackendModule = kvm;

describe('the backend contract', () => {
  it('is implemented by @mcl/backend-kvm', () => {
    for (const f of BACKEND_FUNCTIONS) expect(typeof implementation[f], f).toBe('function');
  });

  it('includes the optional checkpoint and restore', () => {
    expect(typeof implementation.checkpoint).toBe('function');
    expect(typeof implementation.restore).toBe('function');
  });
});
