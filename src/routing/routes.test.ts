/**
 * Table-driven tests of route strings: `[SELECT *] FROM <path> [WHERE <condition>] INTO <sink>`, the sink forms,
 * path rules, keyword case, comments and white space, what the engine ignores, and error positions.
 */
import { describe, expect, it } from 'vitest';
import { EdgeKitError, isEdgeKitError } from '../errors.js';
import { type ParsedRoute, parseRoute } from './route.js';

const up = { kind: 'upstream' } as const;
const mod = (module: string, input: string) => ({ kind: 'module', module, input }) as const;

type Valid = readonly [route: string, expected: ParsedRoute];

const valid: Valid[] = [
  [
    'FROM /messages/modules/sensor/outputs/temperature INTO $upstream',
    { source: '/messages/modules/sensor/outputs/temperature', condition: null, sink: up },
  ],
  ['from /messages/* into $UPSTREAM', { source: '/messages/*', condition: null, sink: up }],
  ['SELECT * FROM /messages INTO $upstream', { source: '/messages', condition: null, sink: up }],
  ['select * from /messages into $Upstream', { source: '/messages', condition: null, sink: up }],
  ['FROM /* INTO $upstream', { source: '/*', condition: null, sink: up }],
  [
    "  FROM   /messages/modules/a   WHERE  x = 'y'   INTO  $upstream  ",
    { source: '/messages/modules/a', condition: "x = 'y'", sink: up },
  ],
  [
    "FROM /messages WHERE a = 'b'   AND  c = 'd' INTO $upstream",
    { source: '/messages', condition: "a = 'b'   AND  c = 'd'", sink: up },
  ],
  [
    "FROM /messages/modules/a/* WHERE (x = '1') INTO $upstream",
    { source: '/messages/modules/a/*', condition: "(x = '1')", sink: up },
  ],
  [
    'FROM /messages INTO BrokeredEndpoint("/modules/filter/inputs/in1")',
    { source: '/messages', condition: null, sink: mod('filter', 'in1') },
  ],
  [
    "FROM /messages INTO BrokeredEndpoint('/modules/filter/inputs/in1')",
    { source: '/messages', condition: null, sink: mod('filter', 'in1') },
  ],
  [
    'FROM /messages INTO brokeredendpoint("/modules/f/inputs/i")',
    { source: '/messages', condition: null, sink: mod('f', 'i') },
  ],
  [
    'FROM /messages INTO BROKEREDENDPOINT ( "/modules/f/inputs/i" )',
    { source: '/messages', condition: null, sink: mod('f', 'i') },
  ],
  [
    'FROM /messages INTO BrokeredEndpoint(" /modules/f/inputs/i ")',
    { source: '/messages', condition: null, sink: mod('f', 'i') },
  ],
  [
    'FROM /messages INTO BrokeredEndpoint("modules/f/inputs/i")',
    { source: '/messages', condition: null, sink: mod('f', 'i') },
  ],
  [
    'FROM /messages INTO BrokeredEndpoint("/modules/f/inputs/i/")',
    { source: '/messages', condition: null, sink: mod('f', 'i') },
  ],
  [
    'FROM /messages INTO BrokeredEndpoint("/mods/f/ins/i")',
    { source: '/messages', condition: null, sink: mod('f', 'i') },
  ], // parts 1 and 3 are not checked
  [
    `FROM /messages INTO BrokeredEndpoint('/modules/a"b/inputs/i')`,
    { source: '/messages', condition: null, sink: mod('a"b', 'i') },
  ],
  [
    'FROM /messages INTO BrokeredEndpoint("/modules/a\\"b/inputs/i")',
    { source: '/messages', condition: null, sink: mod('a\\"b', 'i') },
  ], // not unescaped
  ['FROM / messages / modules INTO $upstream', { source: '/messages/modules', condition: null, sink: up }],
  [
    'FROM /messages/modules /* all modules */ INTO $upstream',
    { source: '/messages/modules', condition: null, sink: up },
  ],
  ['FROM /messages/* /* note */ INTO $upstream', { source: '/messages', condition: null, sink: up }], // "/* /* note */" is one comment
  ['FROM /messages/modules/m1* INTO $upstream', { source: '/messages/modules/m1*', condition: null, sink: up }],
  [
    'FROM /twinChangeNotifications INTO BrokeredEndpoint("/modules/t/inputs/twin")',
    { source: '/twinChangeNotifications', condition: null, sink: mod('t', 'twin') },
  ],
  ["FROM /messages INTO $upstream WHERE a = 'b'", { source: '/messages', condition: null, sink: up }], // text after the sink is ignored
  [
    'FROM /messages INTO BrokeredEndpoint("/modules/m/inputs/i") ;;; @@',
    { source: '/messages', condition: null, sink: mod('m', 'i') },
  ],
  ['FROM /messages WHERE temp > 100 INTO $upstream', { source: '/messages', condition: 'temp > 100', sink: up }], // types are checked when compiling
  ["FROM /messages\nWHERE a = 'b'\nINTO $upstream", { source: '/messages', condition: "a = 'b'", sink: up }],
  [
    "FROM /messages WHERE $body.a[0] = 1 AND {$sys} = 'x' INTO $upstream",
    { source: '/messages', condition: "$body.a[0] = 1 AND {$sys} = 'x'", sink: up },
  ],
  ['FROM /messages WHERE a = "INTO" INTO $upstream', { source: '/messages', condition: 'a = "INTO"', sink: up }],
  [
    'FROM /messages/modules/sensor/outputs/* WHERE as_number(temperature) > 25 INTO BrokeredEndpoint("/modules/alerts/inputs/hot")',
    {
      source: '/messages/modules/sensor/outputs/*',
      condition: 'as_number(temperature) > 25',
      sink: mod('alerts', 'hot'),
    },
  ],
];

type Invalid = readonly [route: string, column: number];

const invalid: Invalid[] = [
  ['', 1],
  ['   ', 4],
  ['FORM /messages INTO $upstream', 1],
  ['SELECT FROM /messages INTO $upstream', 8],
  ['SELECT*FROM /messages INTO $upstream', 1],
  ['FROM INTO $upstream', 6],
  ['FROM /messages/ INTO $upstream', 17],
  ['FROM / INTO $upstream', 8],
  ['FROM messages INTO $upstream', 6],
  ['FROM /messages/modules/42 INTO $upstream', 24],
  ['FROM /messages/modules/and INTO $upstream', 24],
  ['FROM /messages/modules/null INTO $upstream', 24],
  ['FROM /messages/modules/e5 INTO $upstream', 24],
  ['FROM /messages WHER x INTO $upstream', 16],
  ['FROM /messages WHERE INTO $upstream', 22],
  ['FROM /messages WHERE temp == 100 INTO $upstream', 28],
  ["FROM /messages WHERE a = 'b' c = 'd' INTO $upstream", 30],
  ["FROM /messages WHERE (a = 'b' INTO $upstream", 31],
  ['FROM /messages WHERE a = @ INTO $upstream', 26],
  ["FROM /messages WHERE a = 'b INTO $upstream", 26],
  ["FROM /messages WHERE a = 'b'", 29],
  ['FROM /messages INTO', 20],
  ['FROM /messages INTO upstream', 21],
  ['FROM /messages INTO $cloud', 21],
  ['FROM /messages INTO Endpoint("/modules/m/inputs/i")', 21],
  ['FROM /messages INTO BrokeredEndpoint("/modules/m/inputs/i)', 38],
  ['FROM /messages INTO BrokeredEndpoint("/modules/m/inputs/i\')', 38],
  [`FROM /messages INTO BrokeredEndpoint(""/modules/m/inputs/i"")`, 40],
  ['FROM /messages INTO BrokeredEndpoint("/modules/m/inputs/i"', 59],
  ['FROM /messages INTO BrokeredEndpoint "/modules/m/inputs/i")', 38],
  ['FROM /messages INTO BrokeredEndpoint(/modules/m/inputs/i")', 38],
  ['FROM /messages INTO "/modules/m/inputs/i"', 21],
  ['FROM /messages INTO /modules/m/inputs/i', 21],
  ['FROM /messages INTO BrokeredEndpoint("/modules/m")', 39],
  ['FROM /messages INTO BrokeredEndpoint("/modules/m/inputs/i/x")', 39],
  ['FROM /messages INTO BrokeredEndpoint("//modules/m/inputs/i")', 39],
  ['FROM /messages INTO BrokeredEndpoint("/modules/m/inputs/i//")', 39],
  ['FROM /messages INTO BrokeredEndpoint("")', 39],
  ['FROM /messages INTO BrokeredEndpoint("   ")', 39],
];

describe('parseRoute', () => {
  it('has at least 40 cases', () => {
    expect(valid.length + invalid.length).toBeGreaterThanOrEqual(40);
  });

  it.each(valid)('%s', (route, expected) => {
    expect(parseRoute(route)).toEqual(expected);
  });

  it.each(invalid)('rejects %j at column %i', (route, column) => {
    let error: unknown;
    try {
      parseRoute(route);
    } catch (e) {
      error = e;
    }
    expect(isEdgeKitError(error, 'invalid-route')).toBe(true);
    expect((error as EdgeKitError).details.column).toBe(column);
    expect((error as EdgeKitError).message).toMatch(/^invalid route: at column \d+: /);
  });

  it('names the position and what was expected, in the message and the details', () => {
    const error = (() => {
      try {
        parseRoute('FROM /messages/modules/filter WHER x = 1 INTO $upstream');
      } catch (e) {
        return e as EdgeKitError;
      }
      throw new Error('no error');
    })();
    expect(error).toBeInstanceOf(EdgeKitError);
    expect(error.message).toBe('invalid route: at column 31: expected WHERE or INTO, found "WHER"');
    expect(error.details).toMatchObject({ offset: 30, line: 1, column: 31, expected: 'WHERE or INTO', found: 'WHER' });
  });

  it('counts lines and columns in multi-line routes', () => {
    try {
      parseRoute("FROM /messages\n  WHERE a = 'b'\n  INT $upstream");
      expect.unreachable();
    } catch (e) {
      expect((e as EdgeKitError).details).toMatchObject({ line: 3, column: 3, found: 'INT' });
      expect((e as EdgeKitError).message).toMatch(/^invalid route: at line 3, column 3: /);
    }
  });

  it('explains the usual mistakes', () => {
    const reason = (route: string) => {
      try {
        parseRoute(route);
        return '';
      } catch (e) {
        return (e as Error).message;
      }
    };
    expect(reason('FROM /messages WHERE a == 1 INTO $upstream')).toContain("'==' is not an operator");
    expect(reason('FROM /messages/ INTO $upstream')).toContain('a path must not end with /');
    expect(reason('FROM /messages/modules/42 INTO $upstream')).toContain('reads as a number');
    expect(reason('FROM /messages/modules/or INTO $upstream')).toContain('is a keyword');
  });

  it('rejects a route that is not a string with a TypeError', () => {
    expect(() => parseRoute(42 as unknown as string)).toThrow(TypeError);
  });
});
