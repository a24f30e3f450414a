/**
 * Property tests (fast-check): the parser and compiler throw nothing but `EdgeKitError('invalid-route')` on any input;
 * printing any syntax tree and parsing it back gives the same tree; compiled conditions never throw when evaluated.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isEdgeKitError } from '../errors.js';
import {
  type BinaryOperator,
  type ExprNode,
  type LiteralToken,
  PRECEDENCE,
  printCondition,
  quoteString,
  shapeOf,
} from './ast.js';
import { encodeJson, message, reading, telemetry } from './fixtures.test-helpers.js';
import { type TokenType, tokenize } from './lexer.js';
import { compileCondition, parseCondition, parseRoute } from './route.js';
import { checkRoutes } from './table.js';

const RUNS = { numRuns: 400 };

function onlyRouteErrors(fn: () => unknown): boolean {
  try {
    fn();
    return true;
  } catch (error) {
    if (isEdgeKitError(error, 'invalid-route')) return true;
    throw error;
  }
}

const lexesAs = (text: string, type: TokenType) => {
  const tokens = tokenize(text);
  return tokens.length === 2 && tokens[0]?.type === type && tokens[0].text === text;
};

// Fragments that make random text look like routes and conditions, so that generated inputs reach deep into the parser.
const FRAGMENTS = [
  'FROM',
  'from',
  'SELECT',
  '*',
  'WHERE',
  'INTO',
  '$upstream',
  'BrokeredEndpoint',
  '(',
  ')',
  '"/modules/m/inputs/i"',
  "'/modules/m/inputs/i'",
  '/',
  'messages',
  'modules',
  'outputs',
  'm1',
  'AND',
  'OR',
  'NOT',
  '=',
  '<>',
  '!=',
  '<',
  '>=',
  '+',
  '-',
  '%',
  '||',
  '??',
  ',',
  'true',
  'null',
  'undefined',
  '3',
  '-2.5e3',
  '0x1F',
  "'str'",
  '"s\\"q"',
  'temp',
  '$body.a.b[0]',
  '$body.',
  '{',
  '}',
  '$sys',
  'as_number',
  'concat',
  'substring',
  'is_defined',
  '/*',
  '*/',
  '@',
  "'open",
  '[',
  ']',
  '\\',
  '\n',
  '  ',
];
const soup = fc
  .array(fc.constantFrom(...FRAGMENTS), { maxLength: 24 })
  .chain((parts) => fc.constantFrom(' ', '').map((sep) => parts.join(sep)));
const anyText = fc.oneof(fc.string({ maxLength: 60 }), fc.string({ unit: 'binary', maxLength: 40 }), soup);

describe('robustness', () => {
  it('parseRoute throws only invalid-route errors', () => {
    fc.assert(
      fc.property(anyText, (text) => onlyRouteErrors(() => parseRoute(text))),
      RUNS,
    );
  });

  it('compileCondition throws only invalid-route errors, and its evaluator never throws', () => {
    const bodies = [telemetry, message({ systemProperties: {} }), message({ body: new Uint8Array([0xff, 0x7b]) })];
    fc.assert(
      fc.property(anyText, (text) => {
        let evaluate: ReturnType<typeof compileCondition> | undefined;
        onlyRouteErrors(() => {
          evaluate = compileCondition(text);
        });
        for (const m of bodies) expect([true, false, undefined]).toContain(evaluate?.(m));
      }),
      RUNS,
    );
  });

  it('refuses absurdly nested conditions with invalid-route instead of exhausting the stack', () => {
    const deep = [
      `${'('.repeat(100_000)}true${')'.repeat(100_000)}`,
      `${'NOT '.repeat(10_000)}true`,
      `${'abs('.repeat(10_000)}1${')'.repeat(10_000)} = 1`,
      Array.from({ length: 5000 }, (_, i) => `a = '${i}'`).join(' OR '),
    ];
    for (const text of deep) {
      expect(() => compileCondition(text)).toThrow(/nested more than 100 levels|more than 1000 operators deep/);
      expect(() => parseRoute(`FROM /messages WHERE ${text} INTO $upstream`)).toThrow(/invalid route: at column/);
    }
    const wide = Array.from({ length: 900 }, (_, i) => `a = '${i}'`).join(' OR ');
    expect(compileCondition(wide)({ ...telemetry, properties: { a: '899' } })).toBe(true);
  });

  it('checkRoutes reports bad routes instead of throwing', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string({ minLength: 1, maxLength: 5 }), anyText, { maxKeys: 4 }), (routes) => {
        const { table, invalid } = checkRoutes(routes);
        expect(table.routes.length + invalid.length).toBe(Object.keys(routes).length);
        table.select(telemetry);
      }),
      { numRuns: 200 },
    );
  });
});

// ---- syntax trees

const at = { start: 0, end: 0 };
const identifier = fc
  .oneof(fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,6}$/), fc.stringMatching(/^[^\s()<>@,;:\\"/[\]?={}$]{1,6}$/))
  .filter((name) => lexesAs(name, 'ID'));
const systemName = fc.stringMatching(/^\$[A-Za-z][A-Za-z0-9.[\]]{0,8}$/).filter((name) => lexesAs(name, 'SYS_PROP'));

const literal: fc.Arbitrary<ExprNode> = fc
  .oneof(
    fc.integer().map((n) => ({ token: 'INTEGER' as LiteralToken, raw: String(n) })),
    fc.stringMatching(/^-?\d{0,3}\.\d{1,3}([eE][+-]?\d{1,2})?$/).map((raw) => ({ token: 'REAL' as LiteralToken, raw })),
    fc.stringMatching(/^0[xX][0-9a-fA-F]{1,5}$/).map((raw) => ({ token: 'HEX' as LiteralToken, raw })),
    fc.string({ maxLength: 8 }).map((value) => ({ token: 'STRING' as LiteralToken, raw: quoteString(value) })),
    fc
      .constantFrom<[LiteralToken, string]>(
        ['TRUE', 'true'],
        ['FALSE', 'false'],
        ['NULL', 'null'],
        ['UNDEFINED', 'undefined'],
      )
      .map(([token, raw]) => ({ token, raw })),
  )
  .map((l) => ({ kind: 'literal', ...l, ...at }));

const leaf: fc.Arbitrary<ExprNode> = fc.oneof(
  literal,
  identifier.map((name): ExprNode => ({ kind: 'property', name, ...at })),
  fc
    .tuple(systemName, fc.boolean())
    .map(([name, escaped]): ExprNode => ({ kind: 'system', name, escaped, nameStart: 0, ...at })),
);

const OPERATORS = Object.keys(PRECEDENCE) as BinaryOperator[];

const { expr } = fc.letrec<{ expr: ExprNode }>((tie) => ({
  expr: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    leaf,
    fc
      .tuple(fc.constantFrom<'-' | 'NOT'>('-', 'NOT'), tie('expr'))
      .map(([op, operand]): ExprNode => ({ kind: 'unary', op, operand, ...at })),
    fc
      .tuple(fc.constantFrom(...OPERATORS), tie('expr'), tie('expr'))
      .map(([op, left, right]): ExprNode => ({ kind: 'binary', op, opStart: 0, left, right, ...at })),
    fc
      .tuple(identifier, fc.array(tie('expr'), { maxLength: 3 }))
      .map(([name, args]): ExprNode => ({ kind: 'call', name, args, argsText: '', ...at })),
  ),
}));

describe('printCondition', () => {
  it('prints any tree as text that parses back to the same tree', () => {
    fc.assert(
      fc.property(expr, (tree) => {
        const text = printCondition(tree);
        const parsed = parseCondition(text);
        expect(parsed && shapeOf(parsed)).toEqual(shapeOf(tree));
        expect(parsed && printCondition(parsed)).toBe(text);
      }),
      RUNS,
    );
  });

  it('normalises spacing, keyword case and parentheses', () => {
    const print = (text: string) => printCondition(parseCondition(text) as ExprNode);
    expect(print("a='x' and(b='y' or c='z')")).toBe("a = 'x' AND (b = 'y' OR c = 'z')");
    expect(print('((1 + 2)) * 3 - -4')).toBe('(1 + 2) * 3 - -4');
    expect(print('not (a = b)')).toBe('NOT (a = b)');
    expect(print('- (2 * x)')).toBe('- (2 * x)');
    expect(print('1 - (2 - 3)')).toBe('1 - (2 - 3)');
    expect(print('{ $contentType } = "a\\"b"')).toBe(`{$contentType} = "a\\"b"`);
  });

  it('quotes strings so that the engine reads back the same value', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 12 }), (value) => {
        const evaluate = compileCondition(`${quoteString(value)} = concat('', ${quoteString(value)})`);
        expect(evaluate(telemetry)).toBe(true);
        const literalNode = parseCondition(quoteString(value));
        expect(literalNode?.kind).toBe('literal');
      }),
      RUNS,
    );
    expect(quoteString("it's \\u0041")).toBe("'it\\'s \\\\\\u00750041'");
  });
});

// ---- evaluation of generated, mostly well-typed conditions

const numberTerm = fc.oneof(
  fc.integer({ min: -50, max: 50 }).map(String),
  fc.constantFrom(
    'as_number(temperature)',
    'as_number(count)',
    'as_number(unit)',
    '$body.machine.temperature',
    '$body.count',
    '$body.missing',
    '1 / 0',
    '0 / 0',
  ),
);
const stringTerm = fc.constantFrom(
  "'thermo'",
  'sensorType',
  'missing',
  'blank',
  '$body.machine.name',
  '$messageId',
  "''",
  "upper('x')",
);
const { condition } = fc.letrec<{ condition: string; number: string }>((tie) => ({
  number: fc.oneof(
    { depthSize: 'small' },
    numberTerm,
    fc
      .tuple(tie('number'), fc.constantFrom('+', '-', '*', '/', '??'), tie('number'))
      .map(([a, op, b]) => `(${a} ${op} ${b})`),
    fc.tuple(fc.constantFrom('abs', 'floor', 'sqrt', 'sign'), tie('number')).map(([f, a]) => `${f}(${a})`),
  ),
  condition: fc.oneof(
    { depthSize: 'small' },
    fc
      .tuple(tie('number'), fc.constantFrom('=', '<>', '<', '>='), tie('number'))
      .map(([a, op, b]) => `(${a} ${op} ${b})`),
    fc.tuple(stringTerm, fc.constantFrom('=', '!=', '>'), stringTerm).map(([a, op, b]) => `${a} ${op} ${b}`),
    fc.constantFrom(
      'true',
      'false',
      'null',
      'undefined',
      '($body.machine.running = true)',
      'is_defined(missing)',
      'is_null($body.x)',
    ),
    fc.tuple(tie('condition'), fc.constantFrom('AND', 'OR'), tie('condition')).map(([a, op, b]) => `(${a} ${op} ${b})`),
    tie('condition').map((c) => `NOT (${c})`),
  ),
}));

describe('evaluation', () => {
  it('is total and three-valued on any message', () => {
    const messages = [
      telemetry,
      message({ properties: {} }),
      message({ systemProperties: { contentType: 'application/json', contentEncoding: 'utf-16' } }),
      message({ body: encodeJson({ ...reading, machine: { temperature: 'hot', running: 'yes' } }) }),
    ];
    fc.assert(
      fc.property(condition, (text) => {
        let evaluate: ReturnType<typeof compileCondition> | undefined;
        onlyRouteErrors(() => {
          evaluate = compileCondition(text);
        });
        for (const m of messages) expect([true, false, undefined]).toContain(evaluate?.(m));
      }),
      RUNS,
    );
  });

  it('Kleene logic: NOT flips true and false and keeps undefined; AND/OR agree with their truth tables', () => {
    fc.assert(
      fc.property(condition, condition, (a, b) => {
        const evaluate = (text: string) => {
          try {
            return { value: compileCondition(text)(telemetry) };
          } catch {
            return undefined; // type errors (NOT undefined, null AND undefined…) are covered elsewhere
          }
        };
        const [va, vb] = [evaluate(a), evaluate(b)];
        if (va === undefined || vb === undefined) return;
        const not = evaluate(`NOT (${a})`);
        if (not) expect(not.value).toBe(va.value === undefined ? undefined : !va.value);
        const and = evaluate(`(${a}) AND (${b})`);
        const x = va.value;
        const y = vb.value;
        if (and)
          expect(and.value).toBe(x === false || y === false ? false : x === true && y === true ? true : undefined);
        const or = evaluate(`(${a}) OR (${b})`);
        if (or) expect(or.value).toBe(x === true || y === true ? true : x === false && y === false ? false : undefined);
      }),
      { numRuns: 200 },
    );
  });
});
