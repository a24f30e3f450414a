/**
 * Parser of routes (`[SELECT *] FROM <path> [WHERE <condition>] INTO <sink>`) and conditions, with the IoT Edge
 * engine's grammar: keywords case-insensitive, prefix `-`/`NOT` binding tighter than any binary operator, binary
 * operators left-associative, and tokens after the sink ignored (the engine's route rule does not end at end of
 * input). Errors are {@link RouteLanguageError}s naming what was expected where.
 */
import type { BinaryOperator, CallNode, ExprNode, LiteralToken } from './ast.js';
import { describeFound, RouteLanguageError } from './diagnostics.js';
import { type Token, type TokenType, tokenize } from './lexer.js';

/** Where a route sends messages: the cloud, or an input of a module. */
export type RouteSink =
  | { readonly kind: 'upstream' }
  | { readonly kind: 'module'; readonly module: string; readonly input: string };

/** A parsed route with offsets of its parts in the route text. */
export interface RouteSyntax {
  /** The FROM path, its tokens concatenated (white space and comments removed). */
  readonly source: string;
  readonly sourceStart: number;
  /** The WHERE clause, or `null`. `text` is the raw text from its first to its last token. */
  readonly condition: { readonly text: string; readonly start: number; readonly expr: ExprNode } | null;
  readonly sink: RouteSink;
  readonly sinkStart: number;
  /** Tokens after the sink, which the engine ignores (for example a WHERE written after INTO). */
  readonly ignored: { readonly start: number; readonly text: string } | null;
}

const LITERALS: ReadonlySet<TokenType> = new Set([
  'TRUE',
  'FALSE',
  'STRING',
  'INTEGER',
  'HEX',
  'REAL',
  'NULL',
  'UNDEFINED',
]);

// Binary operators by precedence level, lowest first.
const LEVELS: readonly (readonly TokenType[])[] = [
  ['??'],
  ['OR'],
  ['AND'],
  ['=', '!=', '<>'],
  ['<', '<=', '>', '>='],
  ['+', '-', '||'],
  ['*', '/', '%'],
];

const SINK_EXPECTED = '$upstream or BrokeredEndpoint("/modules/<module>/inputs/<input>")';

const KEYWORD_TOKENS: ReadonlySet<TokenType> = new Set([
  'SELECT',
  'FROM',
  'WHERE',
  'INTO',
  'AND',
  'OR',
  'NOT',
  'TRUE',
  'FALSE',
  'NULL',
  'UNDEFINED',
]);

/** Deepest nesting of parentheses, calls and prefix operators the parser accepts (it recurses on them). */
export const MAX_NESTING = 100;
/** Deepest condition tree accepted: compiling and evaluating recurse on it. */
export const MAX_DEPTH = 1000;

class Parser {
  private index = 0;
  private nesting = 0;

  constructor(
    private readonly text: string,
    private readonly tokens: readonly Token[],
  ) {}

  /** The current token (a method, so that TypeScript does not narrow it across `next()`). */
  current(): Token {
    return this.tokens[this.index] ?? this.eof();
  }

  peek(ahead = 1): Token {
    return this.tokens[this.index + ahead] ?? this.eof();
  }

  private eof(): Token {
    return { type: 'EOF', text: '', start: this.text.length, end: this.text.length };
  }

  next(): Token {
    const token = this.current();
    if (token.type !== 'EOF') this.index++;
    return token;
  }

  previousEnd(): number {
    return this.tokens[this.index - 1]?.end ?? 0;
  }

  fail(token: Token, expected: string, hint?: string): never {
    const found = token.type === 'EOF' ? undefined : token.text;
    throw new RouteLanguageError(token.start, `expected ${expected}, found ${describeFound(found)}`, {
      expected,
      found: found ?? 'end of input',
      ...(hint === undefined ? {} : { hint }),
    });
  }

  expect(type: TokenType, expected: string): Token {
    if (this.current().type !== type) this.fail(this.current(), expected);
    return this.next();
  }

  // ---- conditions

  expression(level = 0): ExprNode {
    if (level >= LEVELS.length) return this.unary();
    let left = this.expression(level + 1);
    const operators = LEVELS[level] ?? [];
    while (operators.includes(this.current().type)) {
      const op = this.next();
      const right = this.expression(level + 1);
      left = {
        kind: 'binary',
        op: op.type as BinaryOperator,
        opStart: op.start,
        left,
        right,
        start: left.start,
        end: right.end,
      };
    }
    return left;
  }

  /** Runs `parse` one nesting level deeper, refusing input nested too deeply to parse without exhausting the stack. */
  nested<T>(token: Token, parse: () => T): T {
    if (++this.nesting > MAX_NESTING) {
      throw new RouteLanguageError(token.start, `the condition is nested more than ${MAX_NESTING} levels deep`, {
        expected: `at most ${MAX_NESTING} levels of parentheses, calls and prefix operators`,
        found: token.text,
      });
    }
    try {
      return parse();
    } finally {
      this.nesting--;
    }
  }

  unary(): ExprNode {
    const token = this.current();
    if (token.type === '-' || token.type === 'NOT') {
      this.next();
      const operand = this.nested(token, () => this.unary());
      return { kind: 'unary', op: token.type, operand, start: token.start, end: operand.end };
    }
    return this.primary();
  }

  primary(): ExprNode {
    const token = this.current();
    switch (token.type) {
      case '(': {
        this.next();
        const inner = this.nested(token, () => this.expression());
        if (this.current().type !== ')') {
          this.fail(this.current(), `')' to close the '(' at column ${this.column(token.start)}`, 'missing closing )');
        }
        this.next();
        return inner;
      }
      case 'SYS_PROP':
        this.next();
        return {
          kind: 'system',
          name: token.text,
          escaped: false,
          nameStart: token.start,
          start: token.start,
          end: token.end,
        };
      case '{': {
        this.next();
        const name = this.expect('SYS_PROP', 'a system property such as $contentType after {');
        this.expect('}', "'}'");
        return {
          kind: 'system',
          name: name.text,
          escaped: true,
          nameStart: name.start,
          start: token.start,
          end: this.previousEnd(),
        };
      }
      case 'ID':
        this.next();
        if (this.current().type === '(') return this.nested(token, () => this.call(token));
        return { kind: 'property', name: token.text, start: token.start, end: token.end };
      case 'UNTERMINATED_STRING':
        throw new RouteLanguageError(token.start, 'unterminated string', {
          expected: `a closing ${token.text[0] === '"' ? 'double' : 'single'} quote`,
          found: 'end of input',
          hint: 'inside strings only \\\', \\", \\\\ and \\uXXXX escapes are allowed',
        });
      case 'UNKNOWN':
        throw new RouteLanguageError(token.start, `invalid symbol ${describeFound(token.text)}`, {
          expected: 'an expression',
          found: token.text,
        });
      case 'QUERY_PATH':
        return this.fail(token, 'an expression', 'brackets are only allowed in $body paths such as $body.values[0]');
      case '=':
        return this.fail(token, 'an expression', "'==' is not an operator; compare with '='");
      case ')':
        return this.fail(token, 'an expression', 'unmatched closing )');
      default:
        if (LITERALS.has(token.type)) {
          this.next();
          return {
            kind: 'literal',
            token: token.type as LiteralToken,
            raw: token.text,
            start: token.start,
            end: token.end,
          };
        }
        return this.fail(token, 'an expression');
    }
  }

  call(name: Token): CallNode {
    this.next(); // (
    const args: ExprNode[] = [];
    const argsStart = this.index;
    if (this.current().type !== ')') {
      args.push(this.expression());
      while (this.current().type === ',') {
        this.next();
        args.push(this.expression());
      }
    }
    const argsText = this.tokens
      .slice(argsStart, this.index)
      .map((t) => t.text)
      .join('');
    if (this.current().type !== ')') this.fail(this.current(), `',' or ')' in the call of ${name.text}`);
    const close = this.next();
    return { kind: 'call', name: name.text, args, argsText, start: name.start, end: close.end };
  }

  column(offset: number): number {
    const lineStart = this.text.lastIndexOf('\n', offset - 1) + 1;
    return offset - lineStart + 1;
  }

  /** A whole condition: nothing may follow it. `null` for an empty condition (only white space or comments). */
  condition(): ExprNode | null {
    if (this.current().type === 'EOF') return null;
    const expr = checkDepth(this.expression());
    if (this.current().type !== 'EOF') this.trailing();
    return expr;
  }

  trailing(): never {
    const token = this.current();
    if (token.type === ')') this.fail(token, 'an operator or the end of the condition', 'unmatched closing )');
    if (token.type === 'UNKNOWN') {
      throw new RouteLanguageError(token.start, `invalid symbol ${describeFound(token.text)}`, {
        expected: 'an operator or the end of the condition',
        found: token.text,
      });
    }
    const hint = /^(&&|!|==)/.test(token.text)
      ? 'use AND, OR, NOT and = in conditions'
      : token.type === 'INTEGER' || token.type === 'REAL'
        ? 'a minus sign directly before a number belongs to the number: write "a - 1", not "a -1"'
        : undefined;
    return this.fail(token, 'an operator or the end of the condition', hint);
  }

  // ---- routes

  route(): RouteSyntax {
    if (this.current().type === 'EOF') this.fail(this.current(), 'FROM (the route is empty)');
    if (this.current().type === 'SELECT') {
      this.next();
      this.expect('*', "'*' after SELECT");
    }
    this.expect('FROM', this.index === 0 ? 'FROM or SELECT *' : 'FROM');
    const sourceStart = this.current().start;
    const source = this.path();
    let condition: RouteSyntax['condition'] = null;
    if (this.current().type === 'WHERE') {
      this.next();
      if (this.current().type === 'INTO' || this.current().type === 'EOF')
        this.fail(this.current(), 'a condition after WHERE');
      const first = this.current();
      const expr = checkDepth(this.expression());
      const end = this.previousEnd();
      condition = { text: this.text.slice(first.start, end), start: first.start, expr };
      if (this.current().type !== 'INTO') {
        if (this.current().type === 'UNKNOWN' || this.current().type === ')') this.trailing();
        this.fail(
          this.current(),
          'INTO or an operator',
          /^(==|&&)/.test(this.current().text) ? 'use = and AND in conditions' : undefined,
        );
      }
    } else if (this.current().type !== 'INTO') {
      this.fail(this.current(), 'WHERE or INTO');
    }
    this.next(); // INTO
    const sinkStart = this.current().start;
    const sink = this.sink();
    const rest = this.current();
    const ignored = rest.type === 'EOF' ? null : { start: rest.start, text: this.text.slice(rest.start).trim() };
    return { source, sourceStart, condition, sink, sinkStart, ignored };
  }

  path(): string {
    let source = '';
    if (this.current().type !== '/')
      this.fail(this.current(), "a path starting with '/', such as /messages/modules/<module>/outputs/<output>");
    while (this.current().type === '/') {
      source += this.next().text;
      const segment = this.current();
      if (segment.type === 'ID' || segment.type === '*') {
        source += this.next().text;
        continue;
      }
      let hint: string | undefined;
      if (segment.type === 'INTO' || segment.type === 'WHERE' || segment.type === 'EOF')
        hint = 'a path must not end with /';
      else if (KEYWORD_TOKENS.has(segment.type)) hint = `"${segment.text}" is a keyword and cannot be a path segment`;
      else if (segment.type === 'INTEGER' || segment.type === 'REAL' || segment.type === 'HEX') {
        hint = `"${segment.text}" reads as a number and cannot be a path segment`;
      }
      this.fail(segment, "a path segment (a name or '*') after '/'", hint);
    }
    return source;
  }

  sink(): RouteSink {
    const token = this.current();
    if (token.type === 'SYS_PROP') {
      this.next();
      if (token.text.toLowerCase() !== '$upstream') {
        throw new RouteLanguageError(token.start, `unsupported system endpoint ${describeFound(token.text)}`, {
          expected: '$upstream',
          found: token.text,
        });
      }
      return { kind: 'upstream' };
    }
    if (token.type === 'ID') {
      if (this.peek().type !== '(') {
        if (token.text.toLowerCase() === 'brokeredendpoint') this.fail(this.peek(), `'(' after ${token.text}`);
        this.fail(token, SINK_EXPECTED);
      }
      this.next();
      this.next(); // (

      const address = this.current();
      if (address.type === 'UNTERMINATED_STRING') {
        throw new RouteLanguageError(address.start, 'unterminated string', {
          expected: 'a closing quote',
          found: 'end of input',
        });
      }
      this.expect('STRING', 'a quoted address such as "/modules/<module>/inputs/<input>"');
      this.expect(')', "')' after the address");
      if (token.text.toLowerCase() !== 'brokeredendpoint') {
        throw new RouteLanguageError(token.start, `unsupported endpoint function ${describeFound(token.text)}`, {
          expected: 'BrokeredEndpoint',
          found: token.text,
        });
      }
      return parseEndpointAddress(address.text.slice(1, -1), address.start + 1);
    }
    return this.fail(token, SINK_EXPECTED);
  }
}

/** Refuses trees deeper than {@link MAX_DEPTH} (long chains such as `a OR b OR …` grow depth without nesting). */
function checkDepth(root: ExprNode): ExprNode {
  const stack: [ExprNode, number][] = [[root, 1]];
  for (let item = stack.pop(); item !== undefined; item = stack.pop()) {
    const [node, depth] = item;
    if (depth > MAX_DEPTH) {
      throw new RouteLanguageError(node.start, `the condition is more than ${MAX_DEPTH} operators deep`, {
        expected: `at most ${MAX_DEPTH} levels of operators`,
      });
    }
    if (node.kind === 'binary') stack.push([node.left, depth + 1], [node.right, depth + 1]);
    else if (node.kind === 'unary') stack.push([node.operand, depth + 1]);
    else if (node.kind === 'call') for (const arg of node.args) stack.push([arg, depth + 1]);
  }
  return root;
}

/**
 * Reads a BrokeredEndpoint address as the engine does: quotes already stripped and nothing unescaped; trimmed; one
 * leading and one trailing `/` removed; exactly four `/`-separated parts, the second being the module and the fourth
 * the input (the first and third are not checked).
 */
export function parseEndpointAddress(raw: string, offset = 0): RouteSink {
  const trimmed = raw.trim();
  if (trimmed === '') {
    throw new RouteLanguageError(offset, 'the endpoint address is empty', {
      expected: '/modules/<module>/inputs/<input>',
    });
  }
  let address = trimmed;
  if (address.startsWith('/')) address = address.slice(1);
  if (address.endsWith('/')) address = address.slice(0, -1);
  const parts = address.split('/');
  if (parts.length !== 4) {
    throw new RouteLanguageError(
      offset,
      `endpoint address ${JSON.stringify(raw)} is not of the form /modules/<module>/inputs/<input>`,
      {
        expected: '/modules/<module>/inputs/<input>',
        found: raw,
      },
    );
  }
  return { kind: 'module', module: parts[1] ?? '', input: parts[3] ?? '' };
}

/** Parses a route string. Throws {@link RouteLanguageError}. */
export function parseRouteSyntax(text: string): RouteSyntax {
  return new Parser(text, tokenize(text)).route();
}

/** Parses a condition. `null` when it is empty (white space or comments only). Throws {@link RouteLanguageError}. */
export function parseConditionSyntax(text: string): ExprNode | null {
  return new Parser(text, tokenize(text)).condition();
}
