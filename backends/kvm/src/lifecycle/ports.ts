// Host TCP ports of exposures, as the supervisor's broker binds them.

import { createServer } from 'node:net';

/** The address the broker binds exposures on: its default `exposureHost` (spec/broker.md), which the supervisor keeps. */
export const EXPOSURE_HOST = '127.0.0.1';

/** Binds `host:port` for a moment; resolves with the error code (`EADDRINUSE`, `EACCES`, ...), or null when the bind worked. */
export function tryBind(host: string, port: number): Promise<string | null> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
    server.listen({ host, port }, () => server.close(() => resolve(null)));
  });
}
