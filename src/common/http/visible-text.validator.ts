import { ValidateBy, type ValidationArguments, type ValidationOptions } from 'class-validator';

/**
 * Text that other people read (display names) or that identifies an account (emails) must
 * look like what it is. Refused everywhere here:
 * - Cc: control characters (tab, newline, DEL, C1 controls);
 * - Cf: format characters, which do not show: zero-width space / joiners / non-joiner, the
 *   bidi embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069; U+202E makes
 *   "gnp.exe" read as "exe.png"), the BOM, tag characters. This also refuses the ZWJ of emoji
 *   sequences and the ZWNJ of some scripts: simple and safe beats clever here;
 * - Zl, Zp: line and paragraph separators;
 * - the other default-ignorable code points (Hangul fillers U+115F, U+1160, U+3164, U+FFA0,
 *   combining grapheme joiner, Mongolian variation selectors…), which render as nothing.
 *   Variation selectors stay allowed in display names: "❤️" is U+2764 U+FE0F;
 * - characters that render blank without being spaces or default-ignorable: U+2800 BRAILLE
 *   PATTERN BLANK and U+1D159 MUSICAL SYMBOL NULL NOTEHEAD. (The Hangul fillers are listed
 *   with them too, so that they stay refused whatever the Unicode data of the runtime.)
 */
const INVISIBLE =
  /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\u115F\u1160\u2800\u3164\uFFA0\u{1D159}]|(?![\uFE00-\uFE0F\u{E0100}-\u{E01EF}])\p{Default_Ignorable_Code_Point}/u;

/**
 * Emails also refuse every space character (isEmail lets U+3000 and others through) and the
 * variation selectors (U+FE00–U+FE0F, U+E0100–U+E01EF): after a letter they show nothing, so
 * "m1x\uFE0Fy@example.com" would look exactly like "m1xy@example.com".
 */
const INVISIBLE_OR_SPACE = new RegExp(`${INVISIBLE.source}|[\\p{Zs}\\uFE00-\\uFE0F\\u{E0100}-\\u{E01EF}]`, 'u');

/** True when the text holds a control, format (zero-width, bidi) or other invisible character. */
export function hasInvisibleCharacters(text: string): boolean {
  return INVISIBLE.test(text);
}

/**
 * Scripts told apart by the mixed-script rule. Han, Hiragana, Katakana, Hangul and Bopomofo
 * count as one (Japanese and Korean mix them by nature). Letters of any script not listed
 * count together as one more script, so they cannot be mixed with a listed one either.
 */
const SCRIPTS: RegExp[] = [
  'Latin',
  'Greek',
  'Cyrillic',
  'Armenian',
  'Georgian',
  'Hebrew',
  'Arabic',
  'Syriac',
  'Thaana',
  'Nko',
  'Devanagari',
  'Bengali',
  'Gurmukhi',
  'Gujarati',
  'Oriya',
  'Tamil',
  'Telugu',
  'Kannada',
  'Malayalam',
  'Sinhala',
  'Thai',
  'Lao',
  'Tibetan',
  'Myanmar',
  'Khmer',
  'Mongolian',
  'Ethiopic',
  'Cherokee',
  'Canadian_Aboriginal',
  'Tifinagh',
  'Coptic',
  'Glagolitic',
  'Runic',
  'Ogham',
  'Vai',
  'Lisu',
  'Osage',
  'Adlam',
].map((name) => new RegExp(`\\p{Script=${name}}`, 'u'));
SCRIPTS.push(/[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Hangul}\p{Script=Bopomofo}]/u);
const LISTED = new RegExp(SCRIPTS.map((re) => re.source).join('|'), 'gu');

function scriptCount(text: string): number {
  const listed = SCRIPTS.filter((re) => re.test(text)).length;
  return listed + (/\p{L}/u.test(text.replace(LISTED, '')) ? 1 : 0);
}

/**
 * Why this email address is refused, or undefined when it is fine. The rule, kept simple:
 * - no invisible, control, bidi or space characters, nor variation selectors (see INVISIBLE and
 *   INVISIBLE_OR_SPACE);
 * - an ASCII address is fine as it is;
 * - a non-ASCII one must be in NFKC form (no fullwidth "ａ" or mathematical "𝐚" standing in
 *   for "a"), and its local part and each label of its domain must each be written in a
 *   single script (digits and punctuation are neutral): "аdmin@example.com" with a Cyrillic
 *   "а", or "admin@exаmple.com", are refused; "иван@пример.рф" or "zoë@bücher.de" are not.
 * Whole-script lookalikes (an all-Cyrillic word that reads as Latin) are not detected.
 */
export function emailProblem(email: string): string | undefined {
  if (INVISIBLE_OR_SPACE.test(email)) return 'must not contain invisible, control, bidirectional or space characters';
  if (/^[\x21-\x7e]*$/.test(email)) return undefined;
  if (email.normalize('NFKC') !== email)
    return 'must not contain compatibility lookalike characters (fullwidth or styled letters)';
  const at = email.lastIndexOf('@');
  const parts = [email.slice(0, Math.max(at, 0)), ...email.slice(at + 1).split('.')];
  if (parts.some((part) => scriptCount(part) > 1)) {
    return 'must not mix scripts (lookalike letters) in its local part or in a domain label';
  }
  return undefined;
}

const reason = (args: ValidationArguments | undefined, problem: (value: string) => string | undefined) =>
  `${args?.property ?? 'value'} ${(typeof args?.value === 'string' && problem(args.value)) || 'is not allowed'}`;

/**
 * Refuses invisible, control and bidi formatting characters (display names and other free
 * text shown to people). Non-strings pass: the type is other validators' business.
 */
export function IsVisibleText(options?: ValidationOptions): PropertyDecorator {
  const problem = (value: string) =>
    hasInvisibleCharacters(value)
      ? 'must not contain invisible, control or bidirectional formatting characters'
      : undefined;
  return ValidateBy(
    {
      name: 'isVisibleText',
      validator: {
        validate: (value: unknown) => typeof value !== 'string' || problem(value) === undefined,
        defaultMessage: (args) => reason(args, problem),
      },
    },
    options,
  );
}

/** Refuses lookalike email addresses (see emailProblem). Non-strings pass, as above. */
export function IsUnambiguousEmail(options?: ValidationOptions): PropertyDecorator {
  return ValidateBy(
    {
      name: 'isUnambiguousEmail',
      validator: {
        validate: (value: unknown) => typeof value !== 'string' || emailProblem(value) === undefined,
        defaultMessage: (args) => reason(args, emailProblem),
      },
    },
    options,
  );
}
