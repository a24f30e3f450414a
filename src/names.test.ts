import { expect, test } from 'vitest';
import { checkName } from './names.js';

test.each(['sensor', 'SimulatedTemperatureSensor', 'a-b_c', 'x:1', 'dev@site', '0', 'a'.repeat(128)])(
  'accepts %s',
  (name) => {
    expect(checkName('module id', name)).toBe(name);
  },
);

test.each([
  ['', RangeError],
  ['a/b', RangeError],
  ['a+b', RangeError],
  ['a#', RangeError],
  ['a*', RangeError],
  ['a.b', RangeError],
  ['$edgeHub', RangeError],
  ['has space', RangeError],
  ['tab\t', RangeError],
  ['-leading', RangeError],
  ['a'.repeat(129), RangeError],
  [42, TypeError],
  [undefined, TypeError],
])('rejects %j with a clear error', (name, type) => {
  expect(() => checkName('module id', name)).toThrow(type);
});

test('the message names the kind and the value', () => {
  expect(() => checkName('output', 'a/b')).toThrow(/output "a\/b" is not allowed/);
});
