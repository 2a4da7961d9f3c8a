import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { writeAtomic } from '../src/files';

const dir = mkdtempSync(join(tmpdir(), 'mcl-files-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('writeAtomic', () => {
  // The text is written through a small reused buffer a chunk at a time; the
  // bytes must be those of encoding the whole text at once, also where a
  // chunk boundary would fall inside a surrogate pair or a multi-byte character.
  it('writes exactly the UTF-8 of the whole text across chunk boundaries', () => {
    const texts = [
      '',
      'plain',
      'x'.repeat(256 * 1024 - 1) + '😀' + 'tail',
      'é'.repeat(300 * 1024) + '€'.repeat(300 * 1024),
      'a'.repeat(256 * 1024 - 1) + '\ud800' + 'b'.repeat(10),
      '😀'.repeat(400 * 1024),
      'y'.repeat(3 * 1024 * 1024 + 7),
    ];
    for (const [i, text] of texts.entries()) {
      const path = join(dir, `t${i}.json`);
      writeAtomic(path, text, dir);
      expect(readFileSync(path).equals(Buffer.from(text, 'utf8')), `text ${i}`).toBe(true);
    }
  });

  it('writes the pieces of a text given in parts exactly as the joined text, small and large pieces alike', () => {
    const pieces = ['{', 'é'.repeat(100), '😀', 'x'.repeat(256 * 1024 + 3), '', '€'.repeat(300 * 1024), 'z'.repeat(5), '😀'.repeat(200 * 1024), '}'];
    const many = Array.from({ length: 20_000 }, (_, i) => `"k${i}": ${i},\n`);
    for (const [i, parts] of [pieces, many, []].entries()) {
      const path = join(dir, `parts${i}.json`);
      writeAtomic(path, (emit) => parts.forEach(emit), dir);
      expect(readFileSync(path).equals(Buffer.from(parts.join(''), 'utf8')), `parts ${i}`).toBe(true);
    }
  });

  it('replaces an existing file and keeps the requested mode', () => {
    const path = join(dir, 'mode.json');
    writeAtomic(path, 'old', dir);
    writeAtomic(path, 'new', dir, { mode: 0o600 });
    expect(readFileSync(path, 'utf8')).toBe('new');
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });
});
