import { runInThisContext } from 'node:vm';
import { describe, expect, it, vi } from 'vitest';

/**
 * scripts/bundle-server.mjs's asciiOnly(): the non-ASCII characters of regular expression
 * literals become `\uXXXX` escapes (so that V8 can hold the bundle's text with one byte per
 * character), and every expression matches exactly what it matched before. Everything else
 * (strings, tagged templates) is left as written.
 */
const { asciiOnly } = (await import('../../scripts/bundle-server.mjs' as string)) as {
  asciiOnly: (code: string) => string;
};

const SOURCE =
  String.raw`
const words = ['ПРИВЕТ', 'привет', 'HELLO', 'Ё', 'Ελλάδα', 'naïve', '😀😀', '😁', 'x/y', ''];
const half = 4 / 2, third = 9 / 3 / 1;
const expressions = {
  cyrillic: /^[А-ЯЁ]+$/i,
  greek: /^[Α-ώ]+$/,
  latin1: /^[a-zï]+$/,
  identity: /^\Ё$/,
  identityInClass: /^[\Ёx]$/,
  astralU: /^😀+$/u,
  astralRangeU: /^[😀-😂]$/u,
  astralPlain: /😀/,
  afterDivision: /é|Ё/g,
};
const results = {};
for (const [name, re] of Object.entries(expressions)) {
  results[name] = words.map((w) => { re.lastIndex = 0; return re.test(w); });
}
results.arithmetic = [half, third];
results.string = 'Я'.length;
results.raw = String.raw` +
  '`Я\\u042F`' +
  String.raw`;
return results;
`;

/** Runs the code (a function body) and gives back what it returns. */
const run = (code: string): unknown => runInThisContext(`(() => {${code}})()`);

describe('asciiOnly (scripts/bundle-server.mjs)', () => {
  it('writes the regular expressions in ASCII and leaves what they match unchanged', () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
    try {
      const rewritten = asciiOnly(SOURCE);
      expect(run(rewritten)).toEqual(run(SOURCE));
      // What is left outside ASCII is the strings and the tagged template, as written.
      const left = rewritten.match(/[\u0080-\uffff]/g)?.join('');
      const inStrings = [...SOURCE.matchAll(/'[^'\n]*'|`[^`\n]*`/g)]
        .map((m) => m[0])
        .join('')
        .match(/[\u0080-\uffff]/g)
        ?.join('');
      expect(left).toBe(inStrings);
      expect(rewritten).toContain(String.raw`/^[\u0410-\u042f\u0401]+$/i`);
      expect(rewritten).toContain(String.raw`/^\u0401$/`); // the identity escape's backslash went
      expect(rewritten).toContain(String.raw`/^\ud83d\ude00+$/u`);
      expect(warn).toHaveBeenCalledWith(expect.stringMatching(/outside regular expressions left as written/));
    } finally {
      warn.mockRestore();
    }
  });

  it('gives back code without non-ASCII characters as it was, without a warning', () => {
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => undefined);
    try {
      const code = "const r = /^[a-z\\u0430]+$/u; const s = 'abc'; const q = 6 / 3 / 2;";
      expect(asciiOnly(code)).toBe(code);
      expect(warn).not.toHaveBeenCalled();
    } finally {
      warn.mockRestore();
    }
  });
});
