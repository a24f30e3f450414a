/**
 * Table-driven tests of WHERE conditions, written from the rules of the IoT Edge route language: literals, operators
 * and precedence, three-valued logic and undefined propagation, every built-in function, `$body` queries, quoting
 * and escapes, case rules and compile-time type errors. T = true, F = false, U = undefined, E = compile error.
 */
import { describe, expect, it } from 'vitest';
import { encodeJson, message, type Outcome, outcome, reading } from './fixtures.test-helpers.js';

type Case = readonly [condition: string, expected: Outcome];

const U = "missing = 'x'"; // an undefined bool

const literals: Case[] = [
  ['true', 'T'],
  ['false', 'F'],
  ['', 'U'],
  ['   ', 'U'],
  ['/* only a comment */', 'U'],
  ['42', 'U'],
  ["'text'", 'U'],
  ['"text"', 'U'],
  ['null', 'F'],
  ['undefined', 'U'],
  ['not null', 'T'],
  ['(true)', 'T'],
  ['((false))', 'F'],
  ['TRUE', 'U'], // true/false/null are lower case only: TRUE is a property, missing here
  ['True = true', 'E'],
  ['NULL = null', 'E'],
];

const numbers: Case[] = [
  ['1 = 1.0', 'T'],
  ['0x10 = 16', 'T'],
  ['0XfF = 255', 'T'],
  ['0xFFFFFFFFFFFFFFFF = -1', 'T'], // hex literals are signed 64-bit
  ['0x10000000000000000 = 0', 'E'], // too big: the literal is undefined, which does not compare with numbers
  ['1e3 = 1000', 'T'],
  ['2.5E-1 = 0.25', 'T'],
  ['.5 = 0.5', 'T'],
  ['-.5 = -0.5', 'T'],
  ['007 = 7', 'T'],
  ['-0 = 0', 'T'],
  ['10 / 4 = 2.5', 'T'],
  ['7 % 4 = 3', 'T'],
  ['-7 % 4 = -3', 'T'],
  ['5.5 % 2 = 1.5', 'T'],
  ['2 * 3 + 4 = 10', 'T'],
  ['2 + 3 * 4 = 14', 'T'],
  ['(2 + 3) * 4 = 20', 'T'],
  ['10 - 2 - 3 = 5', 'T'],
  ['16 / 4 / 2 = 2', 'T'],
  ['2 * 3 % 4 = 2', 'T'],
  ['1 / 0 > 1e308', 'T'],
  ['-1 / 0 < -1e308', 'T'],
  ['1e999 = 2e999', 'T'],
  ['is_defined(0 / 0)', 'F'],
  ['0 / 0 = 0 / 0', 'U'],
  ['is_defined(5 % 0)', 'F'],
  ['- 3 = -3', 'T'],
  ['- - 3 = 3', 'T'],
  ['-(2 + 3) = -5', 'T'],
  ['5 - -3 = 8', 'T'],
  ['5 -3 = 2', 'E'], // "-3" is one token: two numbers in a row
  ['5-3 = 2', 'E'], // "5-3" is an identifier, a string
  ['3 < 4', 'T'],
  ['4 <= 4', 'T'],
  ['5 > 4.999', 'T'],
  ['4 >= 5', 'F'],
  ['4 != 4', 'F'],
  ['4 <> 5', 'T'],
  ['1 + 2 < 4', 'T'],
  ['1 < 2 = true', 'T'], // comparison binds tighter than equality
  ['true = 1 < 2', 'T'],
  ['is_defined(e5)', 'F'], // "e5" reads as a number the engine cannot convert: the undefined literal
  ["e5 = 'x'", 'E'],
];

const strings: Case[] = [
  [`'abc' = "abc"`, 'T'],
  [`'it\\'s' = "it's"`, 'T'],
  [`"say \\"hi\\"" = 'say "hi"'`, 'T'],
  [`'\\u0041\\u00e9' = 'Aé'`, 'T'],
  [`'back\\\\slash' = concat('back', '\\\\', 'slash')`, 'T'],
  [`'\\\\u0041' = '\\\\A'`, 'T'], // the engine replaces \uXXXX before \\, so \\u0041 is a backslash and A
  [`'tab\there' = 'tab' || '\t' || 'here'`, 'T'],
  [`'a' < 'b'`, 'T'],
  [`'B' < 'a'`, 'T'], // ordinal: upper case sorts first
  [`'abc' < 'abd'`, 'T'],
  [`'abc' < 'ab'`, 'F'],
  [`'' = ''`, 'T'],
  [`'x\\q' = 'x'`, 'E'], // only \' \" \\ \uXXXX are escapes
  [`'open = 'x'`, 'E'],
  [`"open = 'x'`, 'E'],
  [`'a' || 'b' = 'ab'`, 'T'],
  [`'a'||'b' = 'ab'`, 'U'], // without spaces 'a'||'b' is one identifier: a (missing) property
];

const properties: Case[] = [
  ["sensorType = 'thermo'", 'T'],
  ["SENSORTYPE = 'thermo'", 'T'], // names ignore case
  ["sensorType = 'THERMO'", 'F'], // values do not
  ["missing = 'x'", 'U'],
  ["missing <> 'x'", 'U'],
  ["not (missing = 'x')", 'U'],
  ['is_defined(missing)', 'F'],
  ['is_defined(sensorType)', 'T'],
  ["empty = ''", 'T'],
  ['length(empty) = 0', 'T'],
  ['is_defined(blank)', 'T'], // present without a value
  ['is_null(blank)', 'T'],
  ['is_null(sensorType)', 'F'],
  ['is_null(missing)', 'F'],
  ["blank = 'x'", 'U'],
  ['is_string(blank)', 'F'],
  ["concat('<', blank, '>') = '<>'", 'T'],
  ["'<' || blank || '>' = '<>'", 'T'],
  ['is_defined(length(blank))', 'F'],
  ["line-no = 'L1'", 'T'], // '-' is an identifier character
  ["5*2 = 'ten'", 'T'], // so is '*'
  ['temperature > 20', 'E'], // application properties are strings
  ['20 < temperature', 'E'],
  ["temperature > '20'", 'T'], // string comparison
  ['as_number(temperature) > 20', 'T'],
  ['as_number(temperature) = 21.5', 'T'],
  ['as_number(count) * 2 = 14', 'T'],
  ['is_defined(as_number(unit))', 'F'],
  ["$region = 'eu'", 'T'], // the application property "$region" wins over system property "region"
  ["{$region} = 'us'", 'T'], // {$…} reads the system property only
  ["$messageId = 'm-42'", 'T'],
  ["$MESSAGEID = 'm-42'", 'T'],
  ["{ $messageId } = 'm-42'", 'T'],
  ["$connectionModuleId = 'sensor' AND $outputName = 'temperature'", 'T'],
  ["$connectionDeviceId = 'edge-2'", 'F'],
  ["$nosuch = 'x'", 'U'],
  ['is_defined($nosuch)', 'F'],
  ["$x[0] = 'a'", 'E'], // brackets outside $body: the undefined literal
  ['is_defined($x[0])', 'F'],
  ["select = 'x'", 'E'], // keywords are reserved
  ["into = 'x'", 'E'],
  ["a[0] = 'x'", 'E'],
  ["sensorType = 'thermo' /* comment */ AND unit = 'C'", 'T'],
];

const logic: Case[] = [
  ['true AND true', 'T'],
  ['true AND false', 'F'],
  [`true AND ${U}`, 'U'],
  [`false AND ${U}`, 'F'],
  [`${U} AND false`, 'F'],
  [`${U} AND ${U}`, 'U'],
  ['false OR false', 'F'],
  [`true OR ${U}`, 'T'],
  [`${U} OR true`, 'T'],
  [`false OR ${U}`, 'U'],
  [`${U} OR ${U}`, 'U'],
  [`NOT (${U})`, 'U'],
  [`NOT ${U}`, 'E'], // NOT binds tighter than =: NOT of a string
  ['NOT true', 'F'],
  ['not not true', 'T'],
  ['true and not false', 'T'],
  ['TRUE and true', 'E'], // TRUE is a (string) property
  ['true OR false AND false', 'T'], // AND binds tighter than OR
  ['(true OR false) AND false', 'F'],
  ['NOT false = false', 'F'], // NOT binds tighter than =: (NOT false) = false
  ['NOT (false = false)', 'F'],
  ['false and 1 / 0 > 1', 'F'],
  ['undefined AND false', 'F'],
  ['undefined OR true', 'T'],
  ['undefined AND true', 'U'],
  ['null AND true', 'F'], // null as a whole condition is false
  ['(null AND true) = null', 'T'],
  ['(null AND false) = null', 'T'],
  ['null OR true', 'T'],
  ['null OR false', 'F'],
  ['(null OR null) = null', 'T'],
  ['null AND undefined', 'E'],
  ['NOT undefined', 'E'],
  ['NOT sensorType', 'E'],
  ['NOT 1', 'E'],
  ['sensorType AND true', 'E'],
  ['true AND 1', 'E'],
  ['null = null', 'T'],
  ['null <> null', 'F'],
  ['null < null', 'F'],
  ['null >= null', 'T'],
  ['null = 1', 'E'],
  ["null = ''", 'E'],
  ['undefined = undefined', 'U'],
  ['undefined < undefined', 'U'],
  ['undefined = 1', 'E'],
  ['true < false', 'F'],
  ['false < true', 'T'],
  ['true >= true', 'T'],
  ['true && true', 'E'],
  ['true || true', 'E'], // || is string concatenation
  ['a == b', 'E'],
];

const coalesce: Case[] = [
  ["(missing ?? 'dflt') = 'dflt'", 'T'],
  ["(sensorType ?? 'dflt') = 'thermo'", 'T'],
  ["(blank ?? 'dflt') = 'dflt'", 'U'], // a null-valued property is defined: the null wins
  ["(missing ?? other ?? 'z') = 'z'", 'T'],
  ['(as_number(unit) ?? -1) = -1', 'T'],
  ['(as_number(count) ?? -1) = 7', 'T'],
  [`(${U} ?? true)`, 'T'],
  ["missing ?? 'a' = 'a'", 'E'], // ?? binds loosest: string ?? bool
  ["1 ?? 'a'", 'E'],
  ['undefined ?? undefined', 'U'],
  ['null ?? null', 'F'],
  ['($body.machine.nothing ?? 5) = 5', 'F'], // a missing member is null, which is defined
];

const functions: Case[] = [
  ['abs(-2.5) = 2.5', 'T'],
  ['abs(2) = 2', 'T'],
  ['ABS(-1) = 1', 'T'], // function names ignore case
  ['abs(as_number(unit))', 'U'],
  ['is_defined(abs(as_number(unit)))', 'F'],
  ['abs(sensorType) = 1', 'E'],
  ['abs(1, 2) = 1', 'E'],
  ['abs() = 1', 'E'],
  ['abs(null) = 1', 'E'],
  ['exp(0) = 1', 'T'],
  ['exp(1) > 2.718 AND exp(1) < 2.719', 'T'],
  ['exp(1000) = 1 / 0', 'T'],
  ['ceiling(1.2) = 2', 'T'],
  ['ceiling(-1.2) = -1', 'T'],
  ['floor(1.8) = 1', 'T'],
  ['floor(-1.2) = -2', 'T'],
  ['sign(-4) = -1', 'T'],
  ['sign(0) = 0', 'T'],
  ['sign(9.5) = 1', 'T'],
  ['sign(-1 / 0) = -1', 'T'],
  ['sqrt(16) = 4', 'T'],
  ['is_defined(sqrt(-1))', 'F'],
  ['square(-3) = 9', 'T'],
  ['power(2, 10) = 1024', 'T'],
  ['power(9, 0.5) = 3', 'T'],
  ['power(1, 1 / 0) = 1', 'T'],
  ['power(-1, 1 / 0) = 1', 'T'],
  ['is_defined(power(-8, 1 / 3))', 'F'],
  ['power(2) = 4', 'E'],
  ["as_number(' 42 ') = 42", 'T'],
  ["as_number('1,234.5') = 1234.5", 'T'],
  ["as_number('(12)') = -12", 'T'],
  ["as_number('5-') = -5", 'T'],
  ["as_number('+3') = 3", 'T'],
  ["as_number('1e2') = 100", 'T'],
  ["as_number('¤5') = 5", 'T'],
  ["is_defined(as_number('0x10'))", 'F'],
  ["is_defined(as_number(''))", 'F'],
  ["is_defined(as_number('- 5'))", 'F'],
  ["as_number('Infinity') > 1e308", 'T'],
  ["is_defined(as_number('NaN'))", 'F'],
  ['as_number(12) = 12', 'T'],
  ['as_number(true) = 1', 'E'],
  ['as_number(null) = 1', 'E'],
  ['as_number(undefined) = 1', 'E'],
  ['is_bool(false)', 'T'],
  ["is_bool('true')", 'F'],
  ['is_bool(1)', 'F'],
  ['is_bool(null)', 'F'],
  ['is_bool(undefined)', 'F'],
  [`is_bool(${U})`, 'U'], // an undefined bool argument makes the answer undefined
  ['is_bool($body.machine.running)', 'T'],
  ['is_bool($body.machine.pressure)', 'F'],
  ['is_defined(null)', 'T'],
  ['is_defined(undefined)', 'F'],
  ['is_defined(1 / 0)', 'T'],
  ["is_defined('')", 'T'],
  [`is_defined(${U})`, 'F'],
  ['is_defined($body.machine.nothing)', 'T'], // a missing member is null, not undefined
  ['is_defined($body.machine)', 'F'], // objects are not values
  ['is_null(null)', 'T'],
  ['is_null(undefined)', 'F'],
  ['is_null(0)', 'F'],
  ['is_null($body.machine.serial)', 'T'],
  ['is_null($body.machine.pressure)', 'T'], // IoT Edge: true for every member present
  ['is_null($body.machine.nothing)', 'F'], // … and false for a missing one
  ['is_number(1.5)', 'T'],
  ['is_number(1 / 0)', 'F'],
  ["is_number('1')", 'F'],
  ['is_number(as_number(count))', 'T'],
  ['is_number(as_number(unit))', 'F'],
  ['is_number($body.machine.pressure)', 'T'],
  ['is_number($body.machine.name)', 'F'],
  ["is_string('')", 'T'],
  ['is_string(sensorType)', 'T'],
  ['is_string(missing)', 'F'],
  ['is_string(3)', 'F'],
  ['is_string($body.machine.name)', 'T'],
  ['is_string($body.when)', 'F'], // ISO-8601 strings are dates
  ['is_string()', 'E'],
  ["concat('a', 'b') = 'ab'", 'T'],
  ["concat(unit, '°', sensorType) = 'C°thermo'", 'T'],
  ["is_defined(concat('a', missing))", 'F'],
  ["concat('a') = 'a'", 'E'],
  ['concat(1, 2) = 3', 'E'],
  ["concat('a', null) = 'a'", 'E'],
  ["concat('n=', $body.machine.name) = 'n=Press-3'", 'T'],
  ["is_defined(concat('n=', $body.machine.pressure))", 'F'],
  ["length('héllo') = 5", 'T'],
  ["length('😀') = 2", 'T'], // UTF-16 code units
  ['length(3) = 1', 'E'],
  ['length($body.machine.name) = 7', 'T'],
  ["lower('MiXeD') = 'mixed'", 'T'],
  ["upper('straße') = 'STRAßE'", 'T'], // one character to one character
  ["lower('ÀÉ') = 'àé'", 'T'],
  ["upper(1) = '1'", 'E'],
  ["upper($body.machine.name) = 'PRESS-3'", 'T'],
  ['is_defined(lower($body.machine.pressure))', 'F'],
  ["substring('sensor', 2) = 'nsor'", 'T'],
  ["substring('sensor', 6) = ''", 'T'],
  ["is_defined(substring('sensor', 7))", 'F'],
  ["substring('sensor', 1.9) = 'ensor'", 'T'], // indexes are truncated
  ["substring('sensor', 0, 3) = 'sen'", 'T'],
  ["substring('sensor', 2, 4) = 'nsor'", 'T'],
  ["is_defined(substring('sensor', 2, 5))", 'F'],
  ["is_defined(substring('sensor', 6, 0))", 'F'], // with a length the start must be inside the string
  ["substring('sensor', 5, 0) = ''", 'T'],
  ["is_defined(substring('sensor', -1))", 'F'],
  ["substring('abc') = 'a'", 'E'],
  ["substring('abc', '1') = 'a'", 'E'],
  ["index_of('temperature', 'per') = 3", 'T'],
  ["index_of('abc', 'z') = -1", 'T'],
  ["index_of('abc', '') = 0", 'T'],
  ["index_of('aAa', 'A') = 1", 'T'],
  ["is_defined(index_of(missing, 'a'))", 'F'],
  ["starts_with(sensorType, 'the')", 'T'],
  ["starts_with(sensorType, 'The')", 'F'],
  ["ends_with($messageId, '42')", 'T'],
  ["contains('temperature', 'era')", 'T'],
  ["contains('abc', '')", 'T'],
  ["CONTAINS('ABC', 'B')", 'T'],
  ["starts_with(missing, 'a')", 'U'],
  ['starts_with(1, 2)', 'E'],
  ["ends_with('a', 'b', 'c')", 'E'],
  ['unknown_fn(1) = 1', 'E'],
  ['twin_change_includes(properties.reported.x)', 'E'], // only in routes FROM /twinChangeNotifications
];

const body: Case[] = [
  ['$body.machine.temperature = 31.5', 'T'],
  ['$body.machine.temperature > 30', 'T'],
  ['$body.machine.temperature >= 31.5', 'T'],
  ['$body.machine.temperature < 31.5', 'F'],
  ['30 < $body.machine.temperature', 'T'],
  ["$body.machine.name = 'Press-3'", 'T'],
  ["$body.machine.name = 'press-3'", 'F'],
  ["$body.odd!key = 'yes'", 'T'], // names may hold any character but ( ) < > @ , ; : \ " / [ ] ? = { } . and spaces
  ["$body.'odd!key' = 'yes'", 'F'], // quotes are part of the name: no such member
  ["$body.odd key = 'yes'", 'E'],
  ['$body.machine.running', 'T'],
  ['$body.machine.stopped', 'F'],
  ['NOT $body.machine.stopped', 'T'],
  ['$body.machine.running = true', 'T'],
  ['$body.machine.running AND $body.machine.stopped', 'F'],
  ['$body.machine.running OR $body.machine.stopped', 'T'],
  ['$body.machine.running AND true', 'T'],
  [`$body.machine.stopped AND ${U}`, 'U'], // no three-valued shortcut with $body values
  ['$body.machine.pressure AND true', 'U'],
  ["$body.machine.running AND 'x'", 'U'], // accepted by the engine when the left side is a $body value
  ["'x' AND $body.machine.running", 'E'],
  ['$body.machine.running AND null', 'E'],
  ['$body.machine.readings[1] = 20', 'T'],
  ['$body.machine.readings[3] = null', 'T'], // out of range: null
  ["$body.machine.tags[0] = 'hot'", 'T'],
  ['$body.matrix[1][0] = 3', 'T'],
  ['$body.machine.readings[0] + $body.machine.readings[2] = 40', 'T'],
  ['$body.machine.readings[2] / $body.machine.readings[0] = 3', 'T'],
  ['$body.machine.temperature - 1.5 = 30', 'T'],
  ['$body.machine.temperature * 2 = 63', 'T'],
  ['is_defined($body.machine.name + 1)', 'F'],
  ['$body.machine.temperature % 2 = 1.5', 'E'], // IoT Edge has no % for $body values
  ['- $body.machine.temperature = -31.5', 'E'], // nor unary minus
  ['0 - $body.machine.temperature = -31.5', 'T'],
  ["$body.machine.temperature + 'x' = 1", 'E'],
  ['$body.machine.nothing = null', 'T'],
  ['$body.machine.nothing > 25', 'T'], // null sorts after numbers
  ['$body.machine.nothing <> 5', 'T'],
  ['$body.machine.Temperature > 25', 'T'], // members are case-sensitive: missing, so null
  ['$body.machine.Temperature = 31.5', 'F'],
  ["$body.machine.temperature = '31.5'", 'F'], // no conversion between types
  ["$body.machine.temperature < 'a'", 'T'], // numbers sort before strings
  ['$body.machine.running < 0', 'T'], // bools sort before numbers
  ['$body.machine.name < null', 'T'], // strings sort before null
  ['$body.machine.serial = null', 'T'],
  ['$body.machine.serial > 1', 'T'],
  ['$body.machine.temperature = $body.machine.temperature', 'T'],
  ['$body.machine.name = sensorType', 'F'],
  ['$body.machine.name <> missing', 'U'],
  ['$body.machine', 'U'],
  ['$body.machine = null', 'U'], // objects are undefined
  ['$body.machine.tags = null', 'U'],
  ["$body.when = '2024-05-01T12:00:00Z'", 'U'], // dates are not comparable
  ['is_defined($body.when)', 'F'],
  ["$body.label = 'Batch 2024-05-01'", 'T'],
  ['$BODY.machine.temperature > 30', 'T'], // the $body prefix ignores case
  ['$body', 'U'],
  ['is_defined($body)', 'F'],
  ['{$body.machine.temperature} > 30', 'T'],
  ['$body.$.machine.temperature = 31.5', 'T'],
  ['$body.count = 3', 'T'],
  ['$body. = 1', 'E'],
  ['$body.machine..temperature = 1', 'E'],
  ['$body.machine.readings[] = 1', 'E'],
  ['$body.machine.readings[x] = 1', 'E'],
  ["$body.machine.readings['a'] = 1", 'E'],
  ['$body.machine.123 = 1', 'E'],
  ['$body.machine.readings[-1] = 1', 'E'],
  ['$body.machine.readings[1]x = 20', 'U'], // accepted by the engine's path check, rejected when read
  ['$body.machine.temperature = undefined', 'E'],
  ['$body.single.* = 5', 'T'], // a * member is a wildcard: one match is its value…
  ['$body.machine.* = 5', 'U'], // … several matches are undefined
  ['$body.matrix[1][*] = 3', 'U'],
  ['$body.machine.readings[0][*] = 10', 'F'], // no element inside a number: the missing value, null
];

const groups: Record<string, Case[]> = { literals, numbers, strings, properties, logic, coalesce, functions, body };

describe('conditions', () => {
  it('has at least 200 cases', () => {
    expect(Object.values(groups).flat().length).toBeGreaterThanOrEqual(200);
  });
  for (const [group, cases] of Object.entries(groups)) {
    describe(group, () => {
      it.each(cases)('%s → %s', (condition, expected) => {
        expect(outcome(condition)).toBe(expected);
      });
    });
  }
});

describe('$body content rules', () => {
  const condition = '$body.machine.temperature > 30';
  const withSystem = (systemProperties: Record<string, string>, body = encodeJson(reading)) =>
    message({ systemProperties: { connectionModuleId: 'sensor', ...systemProperties }, body });
  const utf16 = (text: string) => new Uint8Array(Buffer.from(text, 'utf16le'));
  const utf32 = (text: string) => {
    const cps = [...text].map((c) => c.codePointAt(0) ?? 0);
    const out = new Uint8Array(cps.length * 4);
    const view = new DataView(out.buffer);
    for (const [i, cp] of cps.entries()) view.setUint32(i * 4, cp, true);
    return out;
  };
  const json = JSON.stringify(reading);
  it.each([
    [
      'application/json + utf-8',
      { contentType: 'application/json', contentEncoding: 'utf-8' },
      encodeJson(reading),
      'T',
    ],
    [
      'names and values in other cases',
      { CONTENTTYPE: 'Application/JSON', ContentEncoding: 'UTF-8' },
      encodeJson(reading),
      'T',
    ],
    ['utf-16 (little-endian)', { contentType: 'application/json', contentEncoding: 'utf-16' }, utf16(json), 'T'],
    ['utf-32 (little-endian)', { contentType: 'application/json', contentEncoding: 'UTF-32' }, utf32(json), 'T'],
    ['no contentEncoding', { contentType: 'application/json' }, encodeJson(reading), 'U'],
    ['no contentType', { contentEncoding: 'utf-8' }, encodeJson(reading), 'U'],
    ['text/plain', { contentType: 'text/plain', contentEncoding: 'utf-8' }, encodeJson(reading), 'U'],
    [
      'a charset parameter',
      { contentType: 'application/json; charset=utf-8', contentEncoding: 'utf-8' },
      encodeJson(reading),
      'U',
    ],
    ['utf8 without hyphen', { contentType: 'application/json', contentEncoding: 'utf8' }, encodeJson(reading), 'U'],
    ['ascii', { contentType: 'application/json', contentEncoding: 'ascii' }, encodeJson(reading), 'U'],
    [
      'invalid JSON',
      { contentType: 'application/json', contentEncoding: 'utf-8' },
      new TextEncoder().encode('{"machine":'),
      'U',
    ],
    ['an array root', { contentType: 'application/json', contentEncoding: 'utf-8' }, encodeJson([reading]), 'U'],
    [
      'a byte order mark',
      { contentType: 'application/json', contentEncoding: 'utf-8' },
      new TextEncoder().encode(`\ufeff${json}`),
      'U',
    ],
    [
      'undecodable bytes',
      { contentType: 'application/json', contentEncoding: 'utf-8' },
      new Uint8Array([0xff, 0xfe, 0x00]),
      'U',
    ],
  ] as const)('%s → %s', (_label, system, bytes, expected) => {
    expect(outcome(condition, withSystem(system, bytes))).toBe(expected);
  });

  it('an application property named "$body.<path>" wins over the body; {$body.<path>} reads the body', () => {
    const m = message({
      properties: { '$body.machine.temperature': '99', '$body.machine.readings[0]': 'x' },
      systemProperties: { contentType: 'application/json', contentEncoding: 'utf-8', '$body.machine.name': 'sys' },
    });
    expect(outcome("$body.machine.temperature = '99'", m)).toBe('T');
    expect(outcome('as_number($body.machine.temperature) = 99', m)).toBe('T');
    expect(outcome('{$body.machine.temperature} = 31.5', m)).toBe('T');
    expect(outcome('$body.machine.readings[0] = 10', m)).toBe('T'); // paths with brackets never read properties
    expect(outcome("$body.machine.name = 'Press-3'", m)).toBe('T'); // system properties never win
  });
});
