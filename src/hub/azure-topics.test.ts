import { describe, expect, test } from 'vitest';
import {
  desiredPatchTopic,
  formatInputTopic,
  isDesiredSubscription,
  isInputSubscription,
  isMethodSubscription,
  methodRequestTopic,
  parseMethodResponseTopic,
  parseOutputTopic,
  parseReportedPatchTopic,
  parseTwinGetTopic,
  subscriptionAllowed,
  twinResponseTopic,
} from './azure-topics.js';

// Captured from azure-iot-device 1.18.4 `sendOutputEvent('out1', m)` (see the edgeHub notes, A1).
const CAPTURED =
  'devices/dev1/modules/modA/messages/events/%24.on=out1&%24.mid=msg-1&%24.cid=corr-1&%24.ct=application%2Fjson&%24.ce=utf-8&alert=true&sp%20ace=a%2Fb%26c/';

describe('parseOutputTopic', () => {
  test('reads the captured Azure SDK output topic', () => {
    expect(parseOutputTopic(CAPTURED)).toStrictEqual({
      deviceId: 'dev1',
      moduleId: 'modA',
      output: 'out1',
      messageId: 'msg-1',
      correlationId: 'corr-1',
      contentType: 'application/json',
      contentEncoding: 'utf-8',
      properties: { alert: 'true', 'sp ace': 'a/b&c' },
    });
  });

  test.each([
    ['devices/d/modules/m/messages/events', undefined, {}],
    ['devices/d/modules/m/messages/events/', undefined, {}],
    ['devices/d/modules/m/messages/events/%24.on=o&k=v', 'o', { k: 'v' }],
    ['devices/d/modules/m/messages/events/%24.on=o&k=v/', 'o', { k: 'v' }],
  ])('accepts the slash variant %s', (topic, output, properties) => {
    const parsed = parseOutputTopic(topic);
    expect(parsed).toBeDefined();
    expect(parsed!.deviceId).toBe('d');
    expect(parsed!.moduleId).toBe('m');
    expect(parsed!.output).toBe(output);
    expect(parsed!.properties).toStrictEqual(properties);
  });

  test('without system properties there is no output and no message id', () => {
    const parsed = parseOutputTopic('devices/d/modules/m/messages/events/');
    expect(parsed).toStrictEqual({ deviceId: 'd', moduleId: 'm', properties: {} });
  });

  test('drops other system properties instead of taking them for application properties', () => {
    const parsed = parseOutputTopic(
      'devices/d/modules/m/messages/events/%24.uid=u&%24.to=x&%24.exp=2030-01-01&%24.ifid=i&%24.sub=s&%24.cdid=spoof&k=v/',
    );
    expect(parsed?.properties).toStrictEqual({ k: 'v' });
  });

  test('decodes + as a space, unencoded $ names as system names, and keeps the last of a repeated name', () => {
    const parsed = parseOutputTopic('devices/d/modules/m/messages/events/$.on=o&a+b=c+d&x=1&x=2&flag/');
    expect(parsed?.output).toBe('o');
    expect(parsed?.properties).toStrictEqual({ 'a b': 'c d', x: '2', flag: '' });
  });

  test('a property named __proto__ stays a plain property', () => {
    const parsed = parseOutputTopic('devices/d/modules/m/messages/events/__proto__=x/');
    expect(Object.keys(parsed!.properties)).toStrictEqual(['__proto__']);
    expect(Object.getOwnPropertyDescriptor(parsed!.properties, '__proto__')?.value).toBe('x');
    expect(Object.getPrototypeOf(parsed!.properties)).toBe(Object.prototype);
  });

  test.each([
    'devices/d/modules/m/messages/event',
    'devices/d/modules/m/messages',
    'devices/d/modules/m/messages/events//',
    'devices/d/modules/m/messages/events/a=1/extra',
    'devices/d/modules/m/messages/events/a=1/extra/',
    'devices//modules/m/messages/events/',
    'devices/d/modules//messages/events/',
    'devices/d/messages/events/',
    '/devices/d/modules/m/messages/events/',
    'devices/d/modules/m/inputs/in1/',
    '$iothub/twin/GET/?$rid=1',
    '',
  ])('refuses %j', (topic) => {
    expect(parseOutputTopic(topic)).toBeUndefined();
  });

  test.each(['%', '%zz=1', 'a=%E0%A4%A', '%24.on=%FF'])('refuses bad percent-encoding %j', (props) => {
    expect(parseOutputTopic(`devices/d/modules/m/messages/events/${props}/`)).toBeUndefined();
  });
});

describe('formatInputTopic', () => {
  test('puts application properties first, then system properties in a fixed order', () => {
    const topic = formatInputTopic('dev1', 'modB', 'in1', {
      sourceModuleId: 'modA',
      sourceDeviceId: 'dev1',
      contentEncoding: 'utf-8',
      contentType: 'application/json',
      correlationId: 'c 1',
      messageId: 'm-9',
      properties: { temp: '21', 'sp ace': 'a/b&c=d' },
    });
    expect(topic).toBe(
      'devices/dev1/modules/modB/inputs/in1/temp=21&sp%20ace=a%2Fb%26c%3Dd&%24.mid=m-9&%24.cid=c%201&%24.ct=application%2Fjson&%24.ce=utf-8&%24.cdid=dev1&%24.cmid=modA',
    );
  });

  test('always has a level after the input name, which the Azure SDK requires', () => {
    expect(formatInputTopic('d', 'm', 'in2', { properties: {} })).toBe('devices/d/modules/m/inputs/in2/');
    // The Azure SDK's own match for input topics.
    expect(formatInputTopic('d', 'm', 'in2', { properties: {} })).toMatch(/^devices\/.*\/modules\/.*\/inputs\/.*\/.*$/);
  });

  test('leaves out application properties that would pose as system properties', () => {
    expect(formatInputTopic('d', 'm', 'in', { properties: { '$.cdid': 'spoof', k: 'v' }, sourceDeviceId: 'd' })).toBe(
      'devices/d/modules/m/inputs/in/k=v&%24.cdid=d',
    );
  });

  test('properties survive the trip through the property bag', () => {
    const properties = { 'sp ace': 'a/b&c', 'plus+sign': '1+1=2', unicode: 'é✓', empty: '', pct: '100%' };
    const topic = formatInputTopic('d', 'm', 'in', { properties, messageId: 'id/1' });
    // An input topic's bag is the same format as an output's: read it back with the output parser.
    const bag = topic.slice('devices/d/modules/m/inputs/in/'.length);
    const parsed = parseOutputTopic(`devices/d/modules/m/messages/events/${bag}/`);
    expect(parsed?.properties).toStrictEqual(properties);
    expect(parsed?.messageId).toBe('id/1');
  });
});

describe('twin topics', () => {
  test.each([
    ['$iothub/twin/GET/?$rid=42', '42'],
    ['$iothub/twin/GET/?$rid=0f8b-1&x=y', '0f8b-1'],
    ['$iothub/twin/GET/?x=y&$rid=abc', 'abc'],
  ])('parseTwinGetTopic(%j)', (topic, rid) => {
    expect(parseTwinGetTopic(topic)).toStrictEqual({ rid });
  });

  test.each([
    '$iothub/twin/GET/?$rid=',
    '$iothub/twin/GET/?',
    '$iothub/twin/GET/',
    '$iothub/twin/GET?$rid=1',
    '$iothub/twin/GET/?rid=1',
    '$iothub/twin/GET/?$rid=1&$rid=2',
    '$iothub/twin/GET/?$rid=a/b',
    '$iothub/twin/GET/?$rid=a#',
    '$iothub/twin/get/?$rid=1',
    '$iothub/twin/PATCH/properties/reported/?$rid=1',
  ])('parseTwinGetTopic refuses %j', (topic) => {
    expect(parseTwinGetTopic(topic)).toBeUndefined();
  });

  test('parseReportedPatchTopic', () => {
    expect(parseReportedPatchTopic('$iothub/twin/PATCH/properties/reported/?$rid=7')).toStrictEqual({ rid: '7' });
    expect(parseReportedPatchTopic('$iothub/twin/PATCH/properties/reported/?$rid=7&$version=3')).toStrictEqual({
      rid: '7',
    });
    expect(parseReportedPatchTopic('$iothub/twin/PATCH/properties/reported/?$version=3')).toBeUndefined();
    expect(parseReportedPatchTopic('$iothub/twin/PATCH/properties/desired/?$rid=7')).toBeUndefined();
    expect(parseReportedPatchTopic('$iothub/twin/GET/?$rid=7')).toBeUndefined();
  });

  test('response and desired patch topics', () => {
    expect(twinResponseTopic(200, 'r-1')).toBe('$iothub/twin/res/200/?$rid=r-1');
    expect(twinResponseTopic(204, '7')).toBe('$iothub/twin/res/204/?$rid=7');
    expect(desiredPatchTopic(12)).toBe('$iothub/twin/PATCH/properties/desired/?$version=12');
  });

  test('a rid read from a request goes back unchanged in the response', () => {
    const rid = 'c5a0b1e2-%41';
    expect(twinResponseTopic(200, parseTwinGetTopic(`$iothub/twin/GET/?$rid=${rid}`)!.rid)).toBe(
      `$iothub/twin/res/200/?$rid=${rid}`,
    );
  });
});

describe('method topics', () => {
  test('methodRequestTopic', () => {
    expect(methodRequestTopic('reboot', '1')).toBe('$iothub/methods/POST/reboot/?$rid=1');
  });

  test.each([
    ['$iothub/methods/res/200/?$rid=1', { status: 200, rid: '1' }],
    ['$iothub/methods/res/404/?$rid=ab&x=1', { status: 404, rid: 'ab' }],
    ['$iothub/methods/res/999/?$rid=z', { status: 999, rid: 'z' }],
  ])('parseMethodResponseTopic(%j)', (topic, expected) => {
    expect(parseMethodResponseTopic(topic)).toStrictEqual(expected);
  });

  test.each([
    '$iothub/methods/res/20/?$rid=1',
    '$iothub/methods/res/2000/?$rid=1',
    '$iothub/methods/res/-20/?$rid=1',
    '$iothub/methods/res/abc/?$rid=1',
    '$iothub/methods/res/200/?$rid=',
    '$iothub/methods/res/200/?x=1',
    '$iothub/methods/res/200?$rid=1',
    '$iothub/methods/POST/200/?$rid=1',
    'x$iothub/methods/res/200/?$rid=1',
  ])('parseMethodResponseTopic refuses %j', (topic) => {
    expect(parseMethodResponseTopic(topic)).toBeUndefined();
  });
});

describe('subscriptions', () => {
  test.each([
    'devices/dev1/modules/modA/inputs/#',
    '$iothub/twin/res/#',
    '$iothub/twin/PATCH/properties/desired/#',
    '$iothub/methods/POST/#',
  ])('allows %j', (topic) => {
    expect(subscriptionAllowed(topic, 'dev1', 'modA')).toBe(true);
  });

  test.each([
    'devices/dev1/modules/modB/inputs/#',
    'devices/dev2/modules/modA/inputs/#',
    'devices/dev1/modules/+/inputs/#',
    'devices/dev1/modules/modA/#',
    'devices/dev1/modules/modA/inputs/in1',
    'devices/dev1/modules/modA/inputs/+/#',
    '$iothub/twin/#',
    '$iothub/#',
    '$iothub/twin/PATCH/properties/#',
    '$iothub/twin/PATCH/properties/desired',
    '$iothub/twin/PATCH/properties/reported/#',
    '$iothub/methods/#',
    '$iothub/methods/res/#',
    '#',
    '+/#',
    'edgekit/v1/#',
    '',
  ])('refuses %j', (topic) => {
    expect(subscriptionAllowed(topic, 'dev1', 'modA')).toBe(false);
  });

  test('the single-purpose checks', () => {
    expect(isInputSubscription('devices/d/modules/m/inputs/#', 'd', 'm')).toBe(true);
    expect(isInputSubscription('devices/d/modules/m/inputs/#', 'd', 'other')).toBe(false);
    expect(isDesiredSubscription('$iothub/twin/PATCH/properties/desired/#')).toBe(true);
    expect(isDesiredSubscription('$iothub/twin/res/#')).toBe(false);
    expect(isMethodSubscription('$iothub/methods/POST/#')).toBe(true);
    expect(isMethodSubscription('$iothub/methods/POST/+')).toBe(false);
  });
});
