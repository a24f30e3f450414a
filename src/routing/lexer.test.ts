import { describe, expect, it } from 'vitest';
import { tokenize } from './lexer.js';

const kinds = (text: string) => tokenize(text).map((t) => `${t.type}:${t.text}`);

describe('tokenize (longest match, ties to the rule declared first)', () => {
  it.each([
    ['3 + 4', ['INTEGER:3', '+:+', 'INTEGER:4', 'EOF:']],
    ['3+4', ['ID:3+4', 'EOF:']],
    ['my-prop', ['ID:my-prop', 'EOF:']],
    ['-1', ['INTEGER:-1', 'EOF:']],
    ['-x', ['ID:-x', 'EOF:']],
    ['- 1', ['-:-', 'INTEGER:1', 'EOF:']],
    ['.5', ['REAL:.5', 'EOF:']],
    ['1.5e3', ['REAL:1.5e3', 'EOF:']],
    ['1.5e', ['ID:1.5e', 'EOF:']],
    ['3.', ['ID:3.', 'EOF:']],
    ['e5', ['REAL:e5', 'EOF:']],
    ['0x1F', ['HEX:0x1F', 'EOF:']],
    ['0x1G', ['ID:0x1G', 'EOF:']],
    ["key2!='x'", ['ID:key2!', '=:=', "STRING:'x'", 'EOF:']],
    ["a != 'x'", ['ID:a', '!=:!=', "STRING:'x'", 'EOF:']],
    ["'a'||'b'", ["ID:'a'||'b'", 'EOF:']],
    ["'a' || 'b'", ["STRING:'a'", '||:||', "STRING:'b'", 'EOF:']],
    ["'open", ["UNTERMINATED_STRING:'open", 'EOF:']],
    ['"a\\"b"', ['STRING:"a\\"b"', 'EOF:']],
    ['"a\\qb"', ['UNTERMINATED_STRING:"a', 'UNKNOWN:\\', 'ID:qb', 'UNTERMINATED_STRING:"', 'EOF:']],
    ['true TRUE True', ['TRUE:true', 'ID:TRUE', 'ID:True', 'EOF:']],
    ['and AND android', ['AND:and', 'AND:AND', 'ID:android', 'EOF:']],
    ['$body.a[0]', ['SYS_PROP:$body.a[0]', 'EOF:']],
    ['a[0]', ['QUERY_PATH:a[0]', 'EOF:']],
    ['$', ['ID:$', 'EOF:']],
    ['{$x}', ['{:{', 'SYS_PROP:$x', '}:}', 'EOF:']],
    ['a /* c */ b', ['ID:a', 'ID:b', 'EOF:']],
    ['/* open', ['/:/', '*:*', 'ID:open', 'EOF:']],
    ['x @ y', ['ID:x', 'UNKNOWN:@', 'ID:y', 'EOF:']],
    ['a\u00a0b', ['ID:a\u00a0b', 'EOF:']], // only space, tab, CR and LF separate tokens
    ['ſelect', ['ID:ſelect', 'EOF:']], // keywords fold ASCII letters only
    ['SELECT*FROM', ['ID:SELECT*FROM', 'EOF:']],
    ['a??b', ['ID:a', '??:??', 'ID:b', 'EOF:']],
    ['a<>b<=c', ['ID:a', '<>:<>', 'ID:b', '<=:<=', 'ID:c', 'EOF:']],
  ])('%j', (text, expected) => {
    expect(kinds(text)).toEqual(expected);
  });

  it('records offsets', () => {
    expect(tokenize("  a = 'b'").map((t) => [t.start, t.end])).toEqual([
      [2, 3],
      [4, 5],
      [6, 9],
      [9, 9],
    ]);
  });
});
