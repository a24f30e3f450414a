/**
 * Making text that came from a broker safe to show: control characters, ESC sequences, bidi overrides and other
 * invisible formatting characters become visible escapes, so a record cannot move a terminal's cursor, recolour it,
 * reorder what is shown or hide text. Used where such text is printed or stored for printing (the CLI, the
 * deployment record's failure reason).
 */

/** C0 and C1 controls, DEL, format characters (bidi controls, zero-width characters, BOM), line and paragraph separators. */
const UNSAFE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu;

const hex = (n: number, width: number) => n.toString(16).padStart(width, '0');

const UNSAFE_ONE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u;

/** Whether `text` holds a character {@link visible} would escape. */
export function hasInvisible(text: string): boolean {
  return UNSAFE_ONE.test(text);
}

/**
 * `text` with every control or invisible formatting character written as an escape: `\n`, `\r`, `\t`, `\xNN` below
 * U+0100 (ESC is `\x1b`), `\uNNNN` or `\u{NNNNN}` above. Other text, backslashes included, is unchanged.
 *
 * @example
 * ```ts
 * visible('edgekit/1.0\u001b[2J'); // 'edgekit/1.0\\x1b[2J'
 * ```
 */
export function visible(text: string): string {
  return text.replace(UNSAFE, (c) => {
    if (c === '\n') return '\\n';
    if (c === '\r') return '\\r';
    if (c === '\t') return '\\t';
    const code = c.codePointAt(0) ?? 0;
    if (code < 0x100) return `\\x${hex(code, 2)}`;
    return code <= 0xffff ? `\\u${hex(code, 4)}` : `\\u{${hex(code, 5)}}`;
  });
}

/**
 * `JSON.stringify(value, null, indent)` with the characters JSON leaves as they are (DEL, C1 controls, bidi and other
 * format characters, line separators) written as `\uNNNN` escapes too: still JSON, the same value when parsed, and
 * nothing a terminal acts on.
 */
export function visibleJson(value: unknown, indent?: number): string {
  const text = JSON.stringify(value, null, indent) ?? 'null';
  return text.replace(UNSAFE, (c) => {
    // JSON.stringify escaped C0 controls and lone surrogates inside strings, so a newline here is its indentation;
    // anything else left sits inside a string, where a \u escape means the same character.
    if (c === '\n') return c;
    let out = '';
    for (let i = 0; i < c.length; i++) out += `\\u${hex(c.charCodeAt(i), 4)}`;
    return out;
  });
}
