import { crc32 } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { decodeCodeCache, encodeCodeCache } from '../../src/boot/run-bundle.js';

// The header of the code cache file (src/boot/run-bundle.ts): V8 trusts bytes that pass its own
// checks (version, flags, source length), so the loader gives it only a cache made for this
// very source whose bytes are those that were written.
describe('code cache file', () => {
  const source = crc32(Buffer.from('the bundle'));
  const data = Buffer.from('bytes V8 serialised, standing in for a real cache');
  const file = encodeCodeCache(source, data);

  it('gives back the bytes it was made of, for the source it was made for', () => {
    expect(decodeCodeCache(file, source)).toEqual(data);
  });

  it('is stale for a source with other contents', () => {
    expect(decodeCodeCache(file, crc32(Buffer.from('another bundle')))).toBe('stale');
  });

  it.each([
    ['one byte of the data changed', (b: Buffer) => (b[b.length - 3] = b[b.length - 3]! ^ 0x01)],
    ['one byte of the recorded checksum changed', (b: Buffer) => (b[14] = b[14]! ^ 0x80)],
    ['another magic', (b: Buffer) => b.write('XX', 0, 'latin1')],
  ])('is damaged with %s', (_, change) => {
    const changed = Buffer.from(file);
    change(changed);
    expect(decodeCodeCache(changed, source)).toBe('damaged');
  });

  it.each([
    ['empty', Buffer.alloc(0)],
    ['only a header', file.subarray(0, 16)],
    ['cut short', file.subarray(0, file.length - 1)],
    ['text', Buffer.from('not a cache at all, but long enough')],
  ])('is damaged when %s', (_, bytes) => {
    expect(decodeCodeCache(bytes, source)).toBe('damaged');
  });
});
