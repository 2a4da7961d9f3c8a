import { generateWorkspace } from './generate';
import { rmSync } from 'node:fs';
rmSync('/tmp/prof', { recursive: true, force: true });
console.log(generateWorkspace('/tmp/prof', 5000));
