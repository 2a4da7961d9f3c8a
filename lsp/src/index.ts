// The language server as a library: `startServer` serves one LSP connection.
export { startServer, type ServerOptions } from './service';
export { PathMapper, findStdlibDir } from './paths';
