// Entry point of the bundled language server (`node lsp/dist/server.cjs --stdio`).
// `createConnection` picks the transport from the command line (`--stdio`,
// `--node-ipc` or `--socket=N`), as editors expect.

import { createConnection, ProposedFeatures } from 'vscode-languageserver/node';
import { startServer } from './service';

const connection = createConnection(ProposedFeatures.all);
// The bundle is CommonJS, so `__dirname` is the folder holding server.cjs.
startServer(connection, __dirname);
connection.listen();
