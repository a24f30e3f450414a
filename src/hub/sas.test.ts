import { createHmac } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { deriveModuleKey, moduleResourceUri, signSas, verifySasToken } from './sas.js';

const HUB = 'myhub.azure-devices.net';
const KEY = Buffer.from('module key of modA, 32 bytes....').toString('base64');
const OTHER_KEY = Buffer.from('module key of modB, 32 bytes....').toString('base64');
const NOW = Date.UTC(2026, 0, 1);
const IN_AN_HOUR = NOW / 1000 + 3600;
const expect_ = { hubHostName: HUB, deviceId: 'dev1', moduleId: 'modA', key: KEY, now: NOW };

/** The token the Azure SDK makes, built by hand from the notes' description of the captured password. */
function azureSdkToken(key: string, resource: string, se: number): string {
  const sr = encodeURIComponent(resource);
  const sig = createHmac('sha256', Buffer.from(key, 'base64')).update(`${sr}\n${se}`).digest('base64');
  return `SharedAccessSignature sr=${sr}&sig=${encodeURIComponent(sig)}&se=${se}`;
}

describe('signSas', () => {
  test('signs the url-encoded resource URI, a newline and the expiry', () => {
    const token = signSas(KEY, `${HUB}/devices/dev1/modules/modA`, IN_AN_HOUR);
    expect(token).toBe(azureSdkToken(KEY, `${HUB}/devices/dev1/modules/modA`, IN_AN_HOUR));
    expect(token).toMatch(
      /^SharedAccessSignature sr=myhub\.azure-devices\.net%2Fdevices%2Fdev1%2Fmodules%2FmodA&sig=[A-Za-z0-9%]+&se=\d+$/,
    );
  });

  test("encodes ! ' ( ) * as the Azure SDK does", () => {
    const token = signSas(KEY, "h/devices/d!'()*/modules/m", 10);
    expect(token).toContain('sr=h%2Fdevices%2Fd%21%27%28%29%2A%2Fmodules%2Fm&');
  });

  test.each([1.5, -1, Number.NaN, Number.POSITIVE_INFINITY])('refuses the expiry %s', (se) => {
    expect(() => signSas(KEY, 'h/devices/d', se)).toThrow(RangeError);
  });
});

test('moduleResourceUri', () => {
  expect(moduleResourceUri(HUB, 'dev1', 'modA')).toBe('myhub.azure-devices.net/devices/dev1/modules/modA');
});

describe('verifySasToken', () => {
  test('accepts a token it signed and says when it expires', () => {
    const token = signSas(KEY, moduleResourceUri(HUB, 'dev1', 'modA'), IN_AN_HOUR);
    expect(verifySasToken(token, expect_)).toStrictEqual({ ok: true, expiresAt: IN_AN_HOUR * 1000 });
  });

  test('accepts a token made like the captured Azure SDK password', () => {
    const token = azureSdkToken(KEY, `${HUB}/devices/dev1/modules/modA`, IN_AN_HOUR);
    expect(verifySasToken(token, expect_)).toStrictEqual({ ok: true, expiresAt: IN_AN_HOUR * 1000 });
  });

  test('accepts fields in any order, an skn, and a host in another case', () => {
    const token = signSas(KEY, moduleResourceUri('MyHub.Azure-Devices.net', 'dev1', 'modA'), IN_AN_HOUR);
    const [, fields] = token.split(' ') as [string, string];
    const reordered = `SharedAccessSignature ${fields.split('&').reverse().join('&')}&skn=policy`;
    expect(verifySasToken(reordered, expect_)).toMatchObject({ ok: true });
  });

  test('verifies against sr as it appears, however the client encoded it', () => {
    // Lower-case escapes: another spelling of the same sr, signed as written.
    const sr = 'myhub.azure-devices.net%2fdevices%2fdev1%2fmodules%2fmodA';
    const sig = createHmac('sha256', Buffer.from(KEY, 'base64')).update(`${sr}\n${IN_AN_HOUR}`).digest('base64');
    const token = `SharedAccessSignature sr=${sr}&sig=${encodeURIComponent(sig)}&se=${IN_AN_HOUR}`;
    expect(verifySasToken(token, expect_)).toMatchObject({ ok: true });
  });

  test('refuses a token signed with another key', () => {
    const token = signSas(OTHER_KEY, moduleResourceUri(HUB, 'dev1', 'modA'), IN_AN_HOUR);
    expect(verifySasToken(token, expect_)).toStrictEqual({ ok: false, reason: 'signature does not match' });
  });

  test('refuses an expired token, also one expiring right now', () => {
    const resource = moduleResourceUri(HUB, 'dev1', 'modA');
    expect(verifySasToken(signSas(KEY, resource, NOW / 1000 - 1), expect_)).toStrictEqual({
      ok: false,
      reason: 'token expired',
    });
    expect(verifySasToken(signSas(KEY, resource, NOW / 1000), expect_)).toMatchObject({ ok: false });
    expect(verifySasToken(signSas(KEY, resource, NOW / 1000 + 1), expect_)).toMatchObject({ ok: true });
  });

  test.each([
    ['another module', moduleResourceUri(HUB, 'dev1', 'modB')],
    ['another device', moduleResourceUri(HUB, 'dev2', 'modA')],
    ['another hub', moduleResourceUri('other.azure-devices.net', 'dev1', 'modA')],
    ['the device itself', `${HUB}/devices/dev1`],
    ['the hub', HUB],
    ['a longer path', `${moduleResourceUri(HUB, 'dev1', 'modA')}/x`],
    ['a module id in another case', moduleResourceUri(HUB, 'dev1', 'moda')],
  ])('refuses a token for %s, even when signed with the right key', (_, resource) => {
    expect(verifySasToken(signSas(KEY, resource, IN_AN_HOUR), expect_)).toStrictEqual({
      ok: false,
      reason: 'token is for another identity',
    });
  });

  test('refuses a tampered token', () => {
    const token = signSas(KEY, moduleResourceUri(HUB, 'dev1', 'modA'), IN_AN_HOUR);
    const sig = /sig=([^&]+)/.exec(token)![1]!;
    const flipped = sig[0] === 'A' ? `B${sig.slice(1)}` : `A${sig.slice(1)}`;
    expect(verifySasToken(token.replace(sig, flipped), expect_)).toStrictEqual({
      ok: false,
      reason: 'signature does not match',
    });
    // Lenient base64 decoding would ignore these; the signature text must match exactly.
    expect(verifySasToken(token.replace(sig, `${sig}!`), expect_)).toMatchObject({ ok: false });
    expect(verifySasToken(token.replace(sig, sig.slice(0, -3)), expect_)).toMatchObject({ ok: false });
    // A later expiry is not covered by the signature.
    expect(verifySasToken(token.replace(`se=${IN_AN_HOUR}`, `se=${IN_AN_HOUR + 1}`), expect_)).toStrictEqual({
      ok: false,
      reason: 'signature does not match',
    });
  });

  test('refuses every token when the expected key is empty', () => {
    const token = signSas('', moduleResourceUri(HUB, 'dev1', 'modA'), IN_AN_HOUR);
    expect(verifySasToken(token, { ...expect_, key: '' })).toMatchObject({ ok: false });
  });

  const good = signSas(KEY, moduleResourceUri(HUB, 'dev1', 'modA'), IN_AN_HOUR);
  test.each([
    undefined,
    null,
    42,
    {},
    Buffer.from(good),
    '',
    'SharedAccessSignature ',
    good.replace('SharedAccessSignature ', ''),
    good.replace('SharedAccessSignature ', 'sharedaccesssignature '),
    good.replace(/&se=\d+/, ''),
    good.replace(/sig=[^&]+&/, ''),
    good.replace(/sr=[^&]+&/, ''),
    good.replace(/se=\d+/, 'se=soon'),
    good.replace(/se=\d+/, 'se=-1'),
    good.replace(/se=\d+/, 'se=1e10'),
    good.replace(/se=\d+/, 'se='),
    good.replace(/sr=[^&]+/, 'sr='),
    good.replace(/sr=[^&]+/, 'sr=%zz'),
    `${good}&se=${IN_AN_HOUR}`,
    `${good}&other=1`,
    `${good}&novalue`,
  ])('refuses the malformed token %#', (token) => {
    expect(verifySasToken(token, expect_)).toStrictEqual({ ok: false, reason: 'malformed token' });
  });

  test('never names the key or the signature in a reason', () => {
    const token = signSas(OTHER_KEY, moduleResourceUri(HUB, 'dev1', 'modA'), IN_AN_HOUR);
    const result = verifySasToken(token, expect_);
    expect(result.ok).toBe(false);
    const reason = (result as { reason: string }).reason;
    expect(reason).not.toContain(KEY);
    expect(reason).not.toContain(/sig=([^&]+)/.exec(token)![1]);
  });
});

describe('deriveModuleKey', () => {
  test('is base64 of HMAC-SHA256 over the label, keyed with the secret', () => {
    const key = deriveModuleKey('s3cret', 'dev1/modA');
    expect(key).toBe(createHmac('sha256', 's3cret').update('dev1/modA').digest('base64'));
    expect(Buffer.from(key, 'base64')).toHaveLength(32);
  });

  test('differs per label and per secret, and signs tokens that verify', () => {
    const key = deriveModuleKey('s3cret', 'dev1/modA');
    expect(deriveModuleKey('s3cret', 'dev1/modB')).not.toBe(key);
    expect(deriveModuleKey('other', 'dev1/modA')).not.toBe(key);
    const token = signSas(key, moduleResourceUri(HUB, 'dev1', 'modA'), IN_AN_HOUR);
    expect(verifySasToken(token, { ...expect_, key })).toMatchObject({ ok: true });
  });
});
