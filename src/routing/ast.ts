/**
 * The syntax tree of route conditions, and a printer that writes a tree back as condition text that parses to the
 * same tree. Nodes carry source offsets (`start`/`end`, end exclusive) for error messages; literals keep their exact
 * token text so that printing does not change their value.
 */

/** Binary operators, from lowest to highest precedence: `??`, `OR`, `AND`, equality, comparison, `+ - ||`, `* / %`. */
export type BinaryOperator =
  | '??'
  | 'OR'
  | 'AND'
  | '='
  | '!='
  | '<>'
  | '<'
  | '<='
  | '>'
  | '>='
  | '+'
  | '-'
  | '||'
  | '*'
  | '/'
  | '%';

/** The kind of token a literal was written as. */
export type LiteralToken = 'TRUE' | 'FALSE' | 'STRING' | 'INTEGER' | 'HEX' | 'REAL' | 'NULL' | 'UNDEFINED';

interface Span {
  /** Offset of the first character in the parsed text. */
  readonly start: number;
  /** Offset just after the last character. */
  readonly end: number;
}

/** `true`, `'text'`, `42`, `0x1F`, `1.5e3`, `null`, `undefined`: `raw` is the token text. */
export interface LiteralNode extends Span {
  readonly kind: 'literal';
  readonly token: LiteralToken;
  readonly raw: string;
}

/** A bare identifier: an application property. */
export interface PropertyNode extends Span {
  readonly kind: 'property';
  readonly name: string;
}

/** `$name` (application property `$name`, else system property `name`, or a `$body` query) or `{$name}`. */
export interface SystemPropertyNode extends Span {
  readonly kind: 'system';
  /** The token text, with its `$`. */
  readonly name: string;
  /** Written as `{$name}`: a system property or `$body` query only, never an application property. */
  readonly escaped: boolean;
  /** Offset of the `$`. */
  readonly nameStart: number;
}

/** `name(arg, …)`: a built-in function. */
export interface CallNode extends Span {
  readonly kind: 'call';
  readonly name: string;
  readonly args: readonly ExprNode[];
  /** The argument tokens' text concatenated without white space (what `twin_change_includes` reads). */
  readonly argsText: string;
}

/** `- operand` or `NOT operand`. */
export interface UnaryNode extends Span {
  readonly kind: 'unary';
  readonly op: '-' | 'NOT';
  readonly operand: ExprNode;
}

/** `left op right`; `opStart` is the operator's offset. */
export interface BinaryNode extends Span {
  readonly kind: 'binary';
  readonly op: BinaryOperator;
  readonly opStart: number;
  readonly left: ExprNode;
  readonly right: ExprNode;
}

/** Any condition expression. */
export type ExprNode = LiteralNode | PropertyNode | SystemPropertyNode | CallNode | UnaryNode | BinaryNode;

/** Precedence level of each binary operator (higher binds tighter). */
export const PRECEDENCE: Readonly<Record<BinaryOperator, number>> = {
  '??': 0,
  OR: 1,
  AND: 2,
  '=': 3,
  '!=': 3,
  '<>': 3,
  '<': 4,
  '<=': 4,
  '>': 4,
  '>=': 4,
  '+': 5,
  '-': 5,
  '||': 5,
  '*': 6,
  '/': 6,
  '%': 6,
};

const UNARY_LEVEL = 7;

/** Escapes a string value as a single-quoted literal that the engine unescapes back to the same value. */
export function quoteString(value: string): string {
  let out = "'";
  for (let i = 0; i < value.length; i++) {
    const ch = value[i] ?? '';
    const previous = i > 0 ? value[i - 1] : undefined;
    if (ch === '\\') out += '\\\\';
    else if (ch === "'") out += "\\'";
    // The engine replaces \uXXXX before it replaces \\, so a 'u' right after a backslash is written as an escape.
    else if (previous === '\\' && ch === 'u') out += '\\u0075';
    else if (previous === '\\' && ch === 'U') out += '\\u0055';
    else out += ch;
  }
  return `${out}'`;
}

/**
 * Writes `node` as condition text, with single spaces around binary operators and the fewest parentheses that keep
 * the tree's shape. Parsing the result gives the same tree (apart from offsets).
 *
 * @example
 * ```ts
 * printCondition(parseCondition("a='x' and(b='y'or c='z')")!) // "a = 'x' AND (b = 'y' OR c = 'z')"
 * ```
 */
export function printCondition(node: ExprNode): string {
  return print(node, 0);
}

function print(node: ExprNode, minLevel: number): string {
  switch (node.kind) {
    case 'literal':
      return node.raw;
    case 'property':
      return node.name;
    case 'system':
      return node.escaped ? `{${node.name}}` : node.name;
    case 'call':
      return `${node.name}(${node.args.map((arg) => print(arg, 0)).join(', ')})`;
    case 'unary':
      return `${node.op === 'NOT' ? 'NOT ' : '- '}${print(node.operand, UNARY_LEVEL)}`;
    case 'binary': {
      const level = PRECEDENCE[node.op];
      const text = `${print(node.left, level)} ${node.op} ${print(node.right, level + 1)}`;
      return level < minLevel ? `(${text})` : text;
    }
  }
}

/** A copy of `node` without offsets: what two parses of equivalent text have in common. */
export type Shape =
  | { readonly kind: 'literal'; readonly token: LiteralToken; readonly raw: string }
  | { readonly kind: 'property'; readonly name: string }
  | { readonly kind: 'system'; readonly name: string; readonly escaped: boolean }
  | { readonly kind: 'call'; readonly name: string; readonly args: readonly Shape[] }
  | { readonly kind: 'unary'; readonly op: '-' | 'NOT'; readonly operand: Shape }
  | { readonly kind: 'binary'; readonly op: BinaryOperator; readonly left: Shape; readonly right: Shape };

/**
 * The shape of `node`: its structure without positions, for comparing trees.
 *
 * @example
 * ```ts
 * shapeOf(parseCondition('a = 1')!) // { kind: 'binary', op: '=', left: { kind: 'property', name: 'a' }, right: { kind: 'literal', token: 'INTEGER', raw: '1' } }
 * ```
 */
export function shapeOf(node: ExprNode): Shape {
  switch (node.kind) {
    case 'literal':
      return { kind: 'literal', token: node.token, raw: node.raw };
    case 'property':
      return { kind: 'property', name: node.name };
    case 'system':
      return { kind: 'system', name: node.name, escaped: node.escaped };
    case 'call':
      return { kind: 'call', name: node.name, args: node.args.map(shapeOf) };
    case 'unary':
      return { kind: 'unary', op: node.op, operand: shapeOf(node.operand) };
    case 'binary':
      return { kind: 'binary', op: node.op, left: shapeOf(node.left), right: shapeOf(node.right) };
  }
}
