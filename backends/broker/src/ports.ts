// Host TCP ports of exposures: the address the broker listens on by default,
// and a trial bind. `mclc plan` (which must not load a backend) and the KVM
// supervisor use these to find a taken port before the broker does; this
// module imports nothing heavier than node:net so that both can.

import { createServer } from 'node:net';

/** The address exposures listen on unless `exposureHost` says otherwise (spec/broker.md). */
export const DEFAULT_EXPOSURE_HOST = '127.0.0.1';

/** Binds `host:port` for a moment; resolves with the error code (`EADDRINUSE`, `EACCES`, ...), or null when the bind worked. */
export function tryBind(host: string, port: number): Promise<string | null> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    server.listen({ host, port }, () => server.close(() => resolve(null)));
  });
}
