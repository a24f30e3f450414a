import { inspect } from 'node:util';
import { describe, expect, test } from 'vitest';
import { decodeUrlComponent, maskedUrlHint, redactCredentials, redactError } from './redact.js';

describe('redactCredentials', () => {
  test.each([
    ['mqtt://user:secret@host', 'mqtt://user:***@host'],
    ['mqtt://user:pa ss@host', 'mqtt://user:***@host'],
    ['amqp://u:p@', 'amqp://u:***@'],
    ['mqtt://u:p@host/path?x=1', 'mqtt://u:***@host/path?x=1'],
    ['mqtt://u:p@ss@host:1883', 'mqtt://u:***@host:1883'],
    ['mqtt://u:p:a:ss@host', 'mqtt://u:***@host'],
    ['mqtt://u:p/a#s?s@host/x', 'mqtt://u:***@host/x'],
    ['mqtt://:secret@host', 'mqtt://:***@host'],
    ['MQTTS://u:secret@host', 'MQTTS://u:***@host'],
    ['mqtt://u:secret@[::zz]:1883', 'mqtt://u:***@[::zz]:1883'],
    ['mqtt://u:secret', 'mqtt://u:***'],
    ['not a url u:p@h', 'not a url u:***@h'],
    ['url "u:p@ss@h" is bad', 'url "u:***@h" is bad'],
    ['could not connect to amqp://u:secret@h:5672/v: refused', 'could not connect to amqp://u:***@h:5672/v: refused'],
    ['first mqtt://a:x@h1\nthen amqp://b:y@h2', 'first mqtt://a:***@h1\nthen amqp://b:***@h2'],
    ['mqtt://host?user=u&password=p%40ss&x=1', 'mqtt://host?user=u&password=***&x=1'],
    ['amqp://host/v?PWD=secret#f', 'amqp://host/v?PWD=***#f'],
  ])('%j → %j', (text, shown) => {
    expect(redactCredentials(text)).toBe(shown);
    expect(redactCredentials(shown), 'redacting twice changes nothing').toBe(shown);
  });

  test.each([
    'mqtt://host:1883',
    'mqtt://user@host',
    'amqp://[::1]:5672/%2F',
    'connect ECONNREFUSED 127.0.0.1:1883',
    'device id "dev@site" is not allowed',
    'at file:///app/node_modules/@scope/pkg/index.js:1:2',
    'at Object.<anonymous> (node:internal/url:806:29)',
    'inputs/gw:1@site/filter/in',
  ])('leaves %j alone', (text) => {
    expect(redactCredentials(text)).toBe(text);
  });

  test('masks the given secrets wherever they appear, also percent-encoded', () => {
    expect(redactCredentials('login failed for p@ss (p%40ss)', ['p@ss', undefined, ''])).toBe(
      'login failed for *** (***)',
    );
  });
});

test('maskedUrlHint explains what may hide under the mask, only when something was masked', () => {
  expect(maskedUrlHint('mqtt://u:pa/ss@host')).toMatch(/password is masked.*%2F/);
  expect(maskedUrlHint('mqtt://ho st')).toBe('');
});

describe('redactError', () => {
  test('returns the error itself when there is nothing to hide', () => {
    const error = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' });
    expect(redactError(error, ['Zq7Wv4'])).toBe(error);
    expect(redactError(undefined)).toBeUndefined();
  });

  test('copies an error that shows credentials: message, stack, string properties and the cause chain', () => {
    class LibraryError extends Error {
      override name = 'LibraryError';
    }
    const inner = Object.assign(new TypeError('Invalid URL'), { input: 'mqtt://u:Zq7Wv4@ho st' });
    const error = Object.assign(new LibraryError('auth failed for Wv4-phrase', { cause: inner }), { code: 42 });
    const shown = redactError(error, ['Wv4-phrase']);
    expect(shown).not.toBe(error);
    expect(shown).toBeInstanceOf(LibraryError);
    expect(shown).toMatchObject({ name: 'LibraryError', message: 'auth failed for ***', code: 42 });
    expect((shown as Error).stack).toMatch(/^LibraryError: auth failed for \*\*\*\n\s+at /);
    expect((shown as Error).cause).toMatchObject({ message: 'Invalid URL', input: 'mqtt://u:***@ho st' });
    expect(inspect(shown, { depth: 5 })).not.toMatch(/Zq7|Wv4/);
    // The original is left as it was.
    expect(error.message).toBe('auth failed for Wv4-phrase');
  });

  test('masks the errors of an AggregateError', () => {
    const error = new AggregateError([new Error('mqtt://u:p@h1'), new Error('ECONNREFUSED')], 'all failed');
    const shown = redactError(error) as AggregateError;
    expect(shown).toBeInstanceOf(AggregateError);
    expect(shown.errors.map((e: Error) => e.message)).toEqual(['mqtt://u:***@h1', 'ECONNREFUSED']);
    expect(error.errors[0].message).toBe('mqtt://u:p@h1');
  });

  test('stops at a circular cause chain', () => {
    const error: Error & { cause?: unknown } = new Error('mqtt://u:p@h');
    error.cause = error;
    expect((redactError(error) as Error).message).toBe('mqtt://u:***@h');
    const errors: unknown[] = [];
    errors.push(errors);
    expect(redactError(new AggregateError(errors, 'nested'))).toBeInstanceOf(AggregateError);
  });
});

describe('decodeUrlComponent', () => {
  test.each([
    ['p%40ss%2Fw%3Ard', 'p@ss/w:rd'],
    ['50%', '50%'],
    ['%zz', '%zz'],
    ['a%4', 'a%4'],
    ['%C3', '%C3'],
    ['%C3%A9%', 'é%'],
    ['100%25', '100%'],
    ['', ''],
  ])('%j → %j', (text, decoded) => {
    expect(decodeUrlComponent(text)).toBe(decoded);
  });
});
