/**
 * Compiles a condition tree once into closures over the message, checking static types as the IoT Edge engine does
 * (application and system properties are strings; `$body` values are typed at run time and compare by type order;
 * the `undefined` literal only mixes with itself). Evaluation never throws and is three-valued: only a result of
 * exactly `true` routes a message.
 */
import type { BinaryNode, CallNode, ExprNode, LiteralNode, SystemPropertyNode, UnaryNode } from './ast.js';
import { compileBodyPath } from './body-path.js';
import { describeFound, RouteLanguageError } from './diagnostics.js';
import { BUILTIN_NAMES, findBuiltin, matchesOverload } from './functions.js';
import { getProperty, NOT_JSON, parsedBody, type RoutingMessage } from './message.js';
import { foldCase } from './text.js';
import {
  constantBool,
  constantNumber,
  constantQuery,
  constantString,
  type Eval,
  NULL_TYPED,
  type StaticType,
  type Str,
  type Tri,
  TYPE_NAMES,
  type Typed,
  toQuery,
  UNDEFINED_TYPED,
} from './typed.js';
import { compareQueryValues, compareStrings, MISSING, type QueryValue, stringToQuery } from './values.js';

/** A warning about a condition that compiles but probably does not do what its author meant. */
export interface ConditionWarning {
  readonly offset: number;
  readonly message: string;
}

/** Options for compiling a condition. */
export interface CompileConditionOptions {
  /** The FROM path of the route; `twin_change_includes` is only allowed for `/twinChangeNotifications`. */
  readonly source?: string;
}

/** A compiled condition: the evaluator and the warnings found while compiling. */
export interface CompiledCondition {
  readonly evaluate: (message: RoutingMessage) => boolean | undefined;
  readonly warnings: readonly ConditionWarning[];
}

/** System properties IoT Edge sets on messages (names are case-insensitive). Others only draw a warning. */
const KNOWN_SYSTEM_PROPERTIES = new Set(
  [
    'messageId',
    'correlationId',
    'userId',
    'to',
    'contentType',
    'contentEncoding',
    'connectionDeviceId',
    'connectionModuleId',
    'connectionDeviceGenerationId',
    'connectionAuthMethod',
    'outputName',
    'inputName',
    'messageSchema',
    'creationTime',
    'creationTimeUtc',
    'enqueuedTime',
    'expiryTimeUtc',
    'messageType',
    'interfaceId',
    'componentName',
    'dt-dataschema',
    'dt-subject',
  ].map(foldCase),
);

type CompareOp = 'eq' | 'ne' | 'lt' | 'le' | 'gt' | 'ge';
const COMPARE_OPS: Readonly<Record<string, CompareOp>> = {
  '=': 'eq',
  '!=': 'ne',
  '<>': 'ne',
  '<': 'lt',
  '<=': 'le',
  '>': 'gt',
  '>=': 'ge',
};

const DECIDE: Readonly<Record<CompareOp, (c: number) => boolean>> = {
  eq: (c) => c === 0,
  ne: (c) => c !== 0,
  lt: (c) => c < 0,
  le: (c) => c <= 0,
  gt: (c) => c > 0,
  ge: (c) => c >= 0,
};

const MIXES_WITH_BODY: ReadonlySet<StaticType> = new Set(['number', 'string', 'bool', 'null']);

function unescapeString(content: string): string {
  // The engine's two passes, in its order: \uXXXX first, then \" \' \\.
  return content
    .replace(/\\[Uu]([0-9A-Fa-f]{4})/g, (_match, hex: string) => String.fromCharCode(Number.parseInt(hex, 16)))
    .replace(/\\(["'\\])/g, '$1');
}

function hexValue(raw: string): number | undefined {
  const digits = raw.slice(2).replace(/^0+/, '');
  if (digits.length > 16) return undefined; // does not fit a signed 64-bit integer: the literal is undefined
  return Number(BigInt.asIntN(64, BigInt(`0x${digits || '0'}`)));
}

class ConditionCompiler {
  readonly warnings: ConditionWarning[] = [];

  constructor(
    private readonly text: string,
    private readonly twinSource: boolean,
  ) {}

  private fail(
    offset: number,
    reason: string,
    facts: { expected?: string; found?: string; hint?: string } = {},
  ): never {
    throw new RouteLanguageError(offset, reason, facts);
  }

  private warn(offset: number, message: string): void {
    this.warnings.push({ offset, message });
  }

  private source(node: ExprNode): string {
    return this.text.slice(node.start, node.end);
  }

  compile(node: ExprNode): Typed {
    switch (node.kind) {
      case 'literal':
        return this.literal(node);
      case 'property':
        return this.property(node.name, node.start);
      case 'system':
        return this.system(node);
      case 'call':
        return this.call(node);
      case 'unary':
        return this.unary(node);
      case 'binary':
        return this.binary(node);
    }
  }

  private literal(node: LiteralNode): Typed {
    switch (node.token) {
      case 'TRUE':
        return constantBool(true);
      case 'FALSE':
        return constantBool(false);
      case 'STRING':
        return constantString(unescapeString(node.raw.slice(1, -1)));
      case 'INTEGER':
      case 'REAL': {
        const value = Number(node.raw);
        return Number.isNaN(value) ? UNDEFINED_TYPED : constantNumber(value);
      }
      case 'HEX': {
        const value = hexValue(node.raw);
        return value === undefined ? UNDEFINED_TYPED : constantNumber(value);
      }
      case 'NULL':
        return NULL_TYPED;
      case 'UNDEFINED':
        return UNDEFINED_TYPED;
    }
  }

  private property(name: string, offset: number): Typed {
    if (/[+*%]|\|\||^['\d]|^-./.test(name)) {
      this.warn(
        offset,
        `${JSON.stringify(name)} is read as one property name, not an expression: put spaces around + - * % || to use them as operators`,
      );
    }
    const folded = foldCase(name);
    return { type: 'string', fn: (m) => getProperty(m.properties, name, folded) };
  }

  private system(node: SystemPropertyNode): Typed {
    const { name } = node;
    const brackets = name.includes('[') || name.includes(']');
    if (foldCase(name.slice(0, 6)) === '$BODY.') {
      const path = compileBodyPath(name.slice(6), node.nameStart + 6);
      const query: Eval<QueryValue> = (m) => {
        const root = parsedBody(m);
        return root === NOT_JSON ? undefined : path.evaluate(root);
      };
      if (node.escaped || brackets) return { type: 'any', fn: query };
      // An application property literally named "$body.<path>" wins over the body.
      const folded = foldCase(name);
      return {
        type: 'any',
        fn: (m) => {
          const own = getProperty(m.properties, name, folded);
          return own === undefined ? query(m) : stringToQuery(own);
        },
      };
    }
    if (brackets) {
      this.warn(node.start, `${name} is always undefined: brackets are only allowed in $body paths`);
      return UNDEFINED_TYPED;
    }
    const systemName = name.slice(1);
    const systemFolded = foldCase(systemName);
    if (!KNOWN_SYSTEM_PROPERTIES.has(systemFolded)) {
      const hint = systemFolded === 'BODY' ? '; to query the body write $body.<member>' : '';
      this.warn(
        node.start,
        `${name} is not a system property IoT Edge sets: it reads ${node.escaped ? '' : `application property ${JSON.stringify(name)} or `}system property ${JSON.stringify(systemName)}${hint}`,
      );
    }
    if (node.escaped) return { type: 'string', fn: (m) => getProperty(m.systemProperties, systemName, systemFolded) };
    const folded = foldCase(name);
    return {
      type: 'string',
      fn: (m) => {
        const own = getProperty(m.properties, name, folded);
        return own === undefined ? getProperty(m.systemProperties, systemName, systemFolded) : own;
      },
    };
  }

  private call(node: CallNode): Typed {
    if (foldCase(node.name) === 'TWIN_CHANGE_INCLUDES') return this.twinChangeIncludes(node);
    const builtin = findBuiltin(node.name);
    if (builtin === undefined) {
      this.fail(node.start, `unknown function ${describeFound(node.name)}`, {
        expected: 'a built-in function',
        found: node.name,
        hint: `functions are ${BUILTIN_NAMES.join(', ')}`,
      });
    }
    const args = node.args.map((arg) => this.compile(arg));
    const types = args.map((arg) => arg.type);
    const overload = builtin.overloads.find((o) => matchesOverload(o, types));
    if (overload === undefined) {
      const given = `${node.name}(${types.map((t) => TYPE_NAMES[t]).join(', ')})`;
      const propertyArg = node.args.findIndex(
        (arg, i) => (arg.kind === 'property' || arg.kind === 'system') && types[i] === 'string',
      );
      const numeric = builtin.signatures.every((s) => s.includes('number') && !s.includes('string'));
      const hint =
        numeric && propertyArg >= 0
          ? `properties are strings: convert with as_number(${this.source(node.args[propertyArg] as ExprNode)})`
          : undefined;
      this.fail(node.start, `invalid arguments to function ${builtin.name}: ${given}`, {
        expected: builtin.signatures.join(' or '),
        found: given,
        ...(hint === undefined ? {} : { hint }),
      });
    }
    if (builtin.name === 'is_null' && types[0] === 'any') {
      this.warn(
        node.start,
        'is_null on a $body value is true for every value present (an IoT Edge quirk); write $body.<path> = null instead',
      );
    }
    return overload.build(args);
  }

  private twinChangeIncludes(node: CallNode): Typed {
    if (!this.twinSource) {
      this.fail(node.start, 'twin_change_includes is only allowed in routes FROM /twinChangeNotifications', {
        expected: 'a built-in function',
        found: node.name,
      });
    }
    const path = node.argsText;
    if (!/^(properties\.reported\.|properties\.desired\.|tags\.)/i.test(path)) {
      this.fail(
        node.start,
        `twin_change_includes(${path}): the path must start with properties.reported., properties.desired. or tags.`,
        {
          expected: 'properties.reported.<path>, properties.desired.<path> or tags.<path>',
          found: path,
        },
      );
    }
    const body = compileBodyPath(path, node.args[0]?.start ?? node.end);
    return {
      type: 'bool',
      fn: (m): Tri => {
        const root = parsedBody(m);
        if (root === NOT_JSON) return undefined;
        const value = body.evaluate(root);
        return value === undefined ? undefined : value !== MISSING;
      },
    };
  }

  private unary(node: UnaryNode): Typed {
    const operand = this.compile(node.operand);
    if (node.op === '-') {
      if (operand.type === 'number') {
        if (operand.constant) return constantNumber(-operand.constant.value);
        const fn = operand.fn;
        return { type: 'number', fn: (m) => -fn(m) };
      }
      return this.fail(
        node.start,
        `invalid operand to unary operator '-': have ${TYPE_NAMES[operand.type]}, expected number`,
        {
          expected: 'number',
          found: TYPE_NAMES[operand.type],
          ...(operand.type === 'any' ? { hint: 'IoT Edge cannot negate $body values; write 0 - $body.<path>' } : {}),
        },
      );
    }
    switch (operand.type) {
      case 'null':
        return constantBool(true);
      case 'bool': {
        const fn = operand.fn;
        return {
          type: 'bool',
          fn: (m) => {
            const v = fn(m);
            return v === undefined ? undefined : !v;
          },
        };
      }
      case 'any': {
        const fn = operand.fn;
        return {
          type: 'bool',
          fn: (m) => {
            const v = fn(m);
            return typeof v === 'boolean' ? !v : undefined;
          },
        };
      }
      default:
        return this.fail(node.start, `invalid operand to NOT: have ${TYPE_NAMES[operand.type]}, expected bool`, {
          expected: 'bool',
          found: TYPE_NAMES[operand.type],
          hint: 'NOT binds tighter than comparisons: write NOT (a = b)',
        });
    }
  }

  private binary(node: BinaryNode): Typed {
    const left = this.compile(node.left);
    const right = this.compile(node.right);
    switch (node.op) {
      case '+':
      case '-':
      case '*':
      case '/':
      case '%':
        return this.arithmetic(node, left, right);
      case '||':
        return this.concat(node, left, right);
      case 'AND':
      case 'OR':
        return this.logical(node, left, right);
      case '??':
        return this.coalesce(node, left, right);
      default:
        return this.compare(node, left, right, COMPARE_OPS[node.op] ?? 'eq');
    }
  }

  private operandError(node: BinaryNode, left: Typed, right: Typed, expected: string, hint?: string): never {
    const opText = this.text.slice(node.opStart, node.opStart + node.op.length);
    const have = `${TYPE_NAMES[left.type]} and ${TYPE_NAMES[right.type]}`;
    let fix = hint;
    if (fix === undefined) {
      const isProperty = (n: ExprNode, t: Typed) =>
        (n.kind === 'property' || n.kind === 'system') && t.type === 'string';
      if (isProperty(node.left, left) && right.type === 'number') {
        fix = `properties are strings: write as_number(${this.source(node.left)}) ${opText} ${this.source(node.right)}`;
      } else if (isProperty(node.right, right) && left.type === 'number') {
        fix = `properties are strings: write ${this.source(node.left)} ${opText} as_number(${this.source(node.right)})`;
      }
    }
    return this.fail(node.opStart, `invalid operands to operator '${opText}': have ${have}, expected ${expected}`, {
      expected,
      found: have,
      ...(fix === undefined ? {} : { hint: fix }),
    });
  }

  private arithmetic(node: BinaryNode, left: Typed, right: Typed): Typed {
    const numeric = (t: Typed) => t.type === 'number' || t.type === 'any';
    if (!numeric(left) || !numeric(right)) return this.operandError(node, left, right, 'number and number');
    if (left.type === 'number' && right.type === 'number') {
      const l = left.fn;
      const r = right.fn;
      switch (node.op) {
        case '+':
          return { type: 'number', fn: (m) => l(m) + r(m) };
        case '-':
          return { type: 'number', fn: (m) => l(m) - r(m) };
        case '*':
          return { type: 'number', fn: (m) => l(m) * r(m) };
        case '/':
          return { type: 'number', fn: (m) => l(m) / r(m) };
        default:
          return { type: 'number', fn: (m) => l(m) % r(m) };
      }
    }
    if (node.op === '%') {
      return this.operandError(node, left, right, 'number and number', "IoT Edge has no '%' for $body values");
    }
    const l = toQuery(left);
    const r = toQuery(right);
    const op = node.op;
    return {
      type: 'any',
      fn: (m) => {
        const a = l(m);
        const b = r(m);
        if (typeof a !== 'number' || typeof b !== 'number') return undefined;
        return op === '+' ? a + b : op === '-' ? a - b : op === '*' ? a * b : a / b;
      },
    };
  }

  private concat(node: BinaryNode, left: Typed, right: Typed): Typed {
    const stringy = (t: Typed) => t.type === 'string' || t.type === 'any';
    if (!stringy(left) || !stringy(right)) return this.operandError(node, left, right, 'string and string');
    const concat = findBuiltin('concat')?.overloads[0];
    if (concat === undefined) throw new Error('concat is missing from the built-in functions');
    return concat.build([left, right]);
  }

  private logical(node: BinaryNode, left: Typed, right: Typed): Typed {
    const boolish = (t: Typed) => t.type === 'null' || t.type === 'bool' || t.type === 'undefined' || t.type === 'any';
    // The engine accepts any right operand when the left one is a $body value.
    if (!boolish(left) || !(boolish(right) || left.type === 'any'))
      return this.operandError(node, left, right, 'bool and bool');
    const and = node.op === 'AND';
    if (left.type === 'any' || right.type === 'any') {
      if (and && (left.type === 'null' || right.type === 'null')) {
        return this.operandError(
          node,
          left,
          right,
          'bool and bool',
          'IoT Edge cannot combine null and a $body value with AND',
        );
      }
      const l = toQuery(left);
      const r = toQuery(right);
      // No three-valued shortcut here: both sides must be booleans.
      return and
        ? {
            type: 'bool',
            fn: (m) => {
              const a = l(m);
              const b = r(m);
              return typeof a === 'boolean' && typeof b === 'boolean' ? a && b : undefined;
            },
          }
        : {
            type: 'bool',
            fn: (m) => {
              const a = l(m);
              const b = r(m);
              return typeof a === 'boolean' && typeof b === 'boolean' ? a || b : undefined;
            },
          };
    }
    if ((left.type === 'null' && right.type === 'undefined') || (left.type === 'undefined' && right.type === 'null')) {
      return this.operandError(node, left, right, 'bool and bool', 'IoT Edge has no AND/OR between null and undefined');
    }
    if (left.type === 'null' || right.type === 'null') {
      if (and || (left.type === 'null' && right.type === 'null')) return NULL_TYPED;
      return left.type === 'null' ? right : left; // null OR x is x
    }
    const l: Eval<Tri> = left.type === 'bool' ? left.fn : () => undefined;
    const r: Eval<Tri> = right.type === 'bool' ? right.fn : () => undefined;
    return and
      ? {
          type: 'bool',
          fn: (m) => {
            const a = l(m);
            if (a === false) return false;
            const b = r(m);
            if (b === false) return false;
            return a === true && b === true ? true : undefined;
          },
        }
      : {
          type: 'bool',
          fn: (m) => {
            const a = l(m);
            if (a === true) return true;
            const b = r(m);
            if (b === true) return true;
            return a === false && b === false ? false : undefined;
          },
        };
  }

  /** The engine's rule for comparisons and `??`: both operands of the left operand's type, or `$body` values. */
  private sameTypes(node: BinaryNode, left: Typed, right: Typed): 'any' | StaticType {
    if (left.type === right.type) return left.type;
    if (left.type === 'any' && MIXES_WITH_BODY.has(right.type)) return 'any';
    if (right.type === 'any' && MIXES_WITH_BODY.has(left.type)) return 'any';
    const expected = `${TYPE_NAMES[left.type]} and ${TYPE_NAMES[left.type]}`;
    return this.operandError(node, left, right, expected);
  }

  private coalesce(node: BinaryNode, left: Typed, right: Typed): Typed {
    const type = this.sameTypes(node, left, right);
    switch (type) {
      case 'undefined':
        return UNDEFINED_TYPED;
      case 'null':
        return NULL_TYPED;
      case 'any': {
        const l = toQuery(left);
        const r = toQuery(right);
        return {
          type: 'any',
          fn: (m) => {
            const v = l(m);
            return v === undefined ? r(m) : v;
          },
        };
      }
      case 'number': {
        const l = (left as Extract<Typed, { type: 'number' }>).fn;
        const r = (right as Extract<Typed, { type: 'number' }>).fn;
        return {
          type: 'number',
          fn: (m) => {
            const v = l(m);
            return !Number.isNaN(v) ? v : r(m);
          },
        };
      }
      case 'string': {
        const l = (left as Extract<Typed, { type: 'string' }>).fn;
        const r = (right as Extract<Typed, { type: 'string' }>).fn;
        return {
          type: 'string',
          fn: (m): Str => {
            const v = l(m);
            return v === undefined ? r(m) : v;
          },
        };
      }
      default: {
        const l = (left as Extract<Typed, { type: 'bool' }>).fn;
        const r = (right as Extract<Typed, { type: 'bool' }>).fn;
        return {
          type: 'bool',
          fn: (m) => {
            const v = l(m);
            return v === undefined ? r(m) : v;
          },
        };
      }
    }
  }

  private compare(node: BinaryNode, left: Typed, right: Typed, op: CompareOp): Typed {
    const type = this.sameTypes(node, left, right);
    const decide = DECIDE[op];
    switch (type) {
      case 'undefined':
        return constantBool(undefined);
      case 'null':
        return constantBool(op === 'eq' || op === 'le' || op === 'ge');
      case 'number':
        return compareNumbers(left as NumberTyped, right as NumberTyped, op);
      case 'string':
        return compareStringTyped(left as StringTyped, right as StringTyped, decide);
      case 'bool': {
        const l = (left as Extract<Typed, { type: 'bool' }>).fn;
        const r = (right as Extract<Typed, { type: 'bool' }>).fn;
        return {
          type: 'bool',
          fn: (m) => {
            const a = l(m);
            const b = r(m);
            return a === undefined || b === undefined ? undefined : decide((a ? 1 : -1) - (b ? 1 : -1));
          },
        };
      }
      default:
        return compareQuery(left, right, decide);
    }
  }
}

type NumberTyped = Extract<Typed, { type: 'number' }>;
type StringTyped = Extract<Typed, { type: 'string' }>;

function compareNumbers(left: NumberTyped, right: NumberTyped, op: CompareOp): Typed {
  const l = left.fn;
  const r = right.fn;
  if (right.constant && !Number.isNaN(right.constant.value)) {
    const c = right.constant.value;
    switch (op) {
      case 'eq':
        return {
          type: 'bool',
          fn: (m) => {
            const a = l(m);
            return !Number.isNaN(a) ? a === c : undefined;
          },
        };
      case 'ne':
        return {
          type: 'bool',
          fn: (m) => {
            const a = l(m);
            return !Number.isNaN(a) ? a !== c : undefined;
          },
        };
      case 'lt':
        return {
          type: 'bool',
          fn: (m) => {
            const a = l(m);
            return !Number.isNaN(a) ? a < c : undefined;
          },
        };
      case 'le':
        return {
          type: 'bool',
          fn: (m) => {
            const a = l(m);
            return !Number.isNaN(a) ? a <= c : undefined;
          },
        };
      case 'gt':
        return {
          type: 'bool',
          fn: (m) => {
            const a = l(m);
            return !Number.isNaN(a) ? a > c : undefined;
          },
        };
      default:
        return {
          type: 'bool',
          fn: (m) => {
            const a = l(m);
            return !Number.isNaN(a) ? a >= c : undefined;
          },
        };
    }
  }
  const decide = DECIDE[op];
  return {
    type: 'bool',
    fn: (m) => {
      const a = l(m);
      const b = r(m);
      if (Number.isNaN(a) || Number.isNaN(b)) return undefined;
      return decide(a < b ? -1 : a > b ? 1 : 0);
    },
  };
}

function compareStringTyped(left: StringTyped, right: StringTyped, decide: (c: number) => boolean): Typed {
  const l = left.fn;
  const r = right.fn;
  const c = right.constant?.value;
  if (typeof c === 'string') {
    return {
      type: 'bool',
      fn: (m) => {
        const a = l(m);
        return typeof a === 'string' ? decide(compareStrings(a, c)) : undefined;
      },
    };
  }
  return {
    type: 'bool',
    fn: (m) => {
      const a = l(m);
      const b = r(m);
      return typeof a === 'string' && typeof b === 'string' ? decide(compareStrings(a, b)) : undefined;
    },
  };
}

function compareQuery(left: Typed, right: Typed, decide: (c: number) => boolean): Typed {
  const l = toQuery(left);
  const r = toQuery(right);
  const constant = constantQuery(right);
  if (constant !== undefined) {
    const c = constant.value;
    if (c === undefined) return constantBool(undefined);
    if (typeof c === 'number') {
      // The common `$body.x > 30`: a number compares by value, anything else by type order (bool < number < others).
      const below = decide(-1);
      const above = decide(1);
      return {
        type: 'bool',
        fn: (m) => {
          const a = l(m);
          if (typeof a === 'number') return a === c ? decide(0) : a < c ? below : a > c ? above : below; // NaN sorts first
          if (a === undefined) return undefined;
          return typeof a === 'boolean' ? below : above;
        },
      };
    }
    return {
      type: 'bool',
      fn: (m) => {
        const a = l(m);
        return a === undefined ? undefined : decide(compareQueryValues(a, c));
      },
    };
  }
  return {
    type: 'bool',
    fn: (m) => {
      const a = l(m);
      if (a === undefined) return undefined;
      const b = r(m);
      return b === undefined ? undefined : decide(compareQueryValues(a, b));
    },
  };
}

/** The value of a whole condition: bool as is, a `$body` bool as is, null is false, anything else undefined. */
function asCondition(typed: Typed): Eval<Tri> {
  switch (typed.type) {
    case 'bool':
      return typed.fn;
    case 'any': {
      const fn = typed.fn;
      return (m) => {
        const v = fn(m);
        return typeof v === 'boolean' ? v : undefined;
      };
    }
    case 'null':
      return () => false;
    default:
      return () => undefined;
  }
}

/** Is `source` (a route's FROM path) the twin change notifications source? */
export function isTwinChangeSource(source: string | undefined): boolean {
  if (source === undefined) return false;
  return foldCase(source.trim().replace(/\*+$/, '').replace(/\/+$/, '')) === '/TWINCHANGENOTIFICATIONS';
}

/**
 * Compiles a parsed condition (`null`: empty, always undefined). `text` is the text the offsets refer to.
 * Throws {@link RouteLanguageError} on type errors, unknown functions and bad `$body` paths.
 */
export function compileConditionSyntax(
  expr: ExprNode | null,
  text: string,
  options: CompileConditionOptions = {},
): CompiledCondition {
  const compiler = new ConditionCompiler(text, isTwinChangeSource(options.source));
  if (expr === null) return { evaluate: () => undefined, warnings: [] };
  const evaluate = asCondition(compiler.compile(expr));
  return { evaluate, warnings: compiler.warnings };
}
