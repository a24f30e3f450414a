// Client certificates and CRLs checked by independent readers: Node's X509Certificate and the openssl command line,
// against CAs that openssl made with each key type and key file form users have.
import { createHash, createPrivateKey, X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import {
  type MakeCaOptions,
  makeCa,
  type OpensslCa,
  openssl,
  opensslOk,
  tempFolder,
} from '../../test/support/openssl-ca.js';
import { expectNoSecret } from '../../test/support/secrets.js';
import { isEdgeKitError } from '../errors.js';
import { createRevocationList, issueClientCertificate } from './certificates.js';

const folder = tempFolder('edgekit-certificates-');
afterAll(() => folder.remove());
afterEach(() => vi.useRealTimers());

let files = 0;
/** Writes `text` to a new file in the test folder; returns its name (openssl runs in that folder). */
function file(text: string, extension = 'pem'): string {
  const name = `f${++files}.${extension}`;
  writeFileSync(path.join(folder.dir, name), text);
  return name;
}

const cas = new Map<string, OpensslCa>();
/** An openssl-made CA, made once per distinct set of options. */
function ca(options: MakeCaOptions = {}): OpensslCa {
  const key = JSON.stringify(options);
  let made = cas.get(key);
  if (made === undefined) {
    made = makeCa(folder.dir, `ca${cas.size + 1}`, options);
    cas.set(key, made);
  }
  return made;
}
const authority = (made: OpensslCa) => ({
  cert: made.cert,
  key: made.key,
  ...(made.passphrase === undefined ? {} : { passphrase: made.passphrase }),
});

const text = (pem: string) => opensslOk(['x509', '-noout', '-text', '-nameopt', 'utf8', '-in', file(pem)], folder.dir);
const crlText = (pem: string) => opensslOk(['crl', '-noout', '-text', '-in', file(pem)], folder.dir);
function verify(made: OpensslCa, cert: string, ...extra: string[]) {
  return openssl(
    ['verify', '-x509_strict', '-purpose', 'sslclient', ...extra, '-CAfile', made.certFile, file(cert)],
    folder.dir,
  );
}
/** The CA's subjectKeyIdentifier as openssl prints it. */
function skiOf(made: OpensslCa): string {
  return opensslOk(['x509', '-noout', '-ext', 'subjectKeyIdentifier', '-in', made.certFile], folder.dir)
    .split('\n')[1]!
    .trim();
}

describe('issueClientCertificate', () => {
  const kinds: readonly [string, MakeCaOptions, string][] = [
    ['EC P-256, PKCS#8', { keyType: 'ec', keyForm: 'pkcs8' }, 'ecdsa-with-SHA256'],
    ['EC P-256, SEC1', { keyType: 'ec', keyForm: 'sec1' }, 'ecdsa-with-SHA256'],
    ['EC P-384, encrypted PKCS#8', { keyType: 'ec-p384', keyForm: 'encrypted-pkcs8' }, 'ecdsa-with-SHA384'],
    ['RSA, PKCS#1', { keyType: 'rsa', keyForm: 'pkcs1' }, 'sha256WithRSAEncryption'],
    ['RSA, encrypted PKCS#8', { keyType: 'rsa', keyForm: 'encrypted-pkcs8' }, 'sha256WithRSAEncryption'],
    ['RSA, encrypted PKCS#1', { keyType: 'rsa', keyForm: 'encrypted-pkcs1' }, 'sha256WithRSAEncryption'],
  ];

  for (const [kind, caOptions, algorithm] of kinds) {
    for (const keyType of ['ec', 'rsa'] as const) {
      it(`issues a ${keyType} client certificate from a CA with a key in ${kind}`, () => {
        const made = ca(caOptions);
        const before = Date.now();
        const issued = issueClientCertificate({ ca: authority(made), commonName: 'gw-1/filter', keyType });
        const cert = new X509Certificate(issued.cert);
        const caCert = new X509Certificate(made.cert);

        expect(cert.subject).toBe('CN=gw-1/filter');
        expect(cert.issuer).toBe(caCert.subject);
        expect(cert.checkIssued(caCert)).toBe(true);
        expect(cert.verify(caCert.publicKey)).toBe(true);
        expect(cert.ca).toBe(false);
        expect(cert.checkPrivateKey(createPrivateKey(issued.key))).toBe(true);
        expect(cert.publicKey.asymmetricKeyType).toBe(keyType);
        expect(cert.serialNumber).toBe(issued.serialNumber);
        expect(Date.parse(cert.validTo)).toBe(issued.notAfter.getTime());
        expect(issued.notAfter.getTime()).toBeGreaterThanOrEqual(before + 365 * 86_400_000 - 1_000);
        expect(issued.notAfter.getTime()).toBeLessThanOrEqual(Date.now() + 365 * 86_400_000);
        // Backdated a little for brokers whose clock is behind, but valid now.
        expect(Date.parse(cert.validFrom)).toBeLessThan(before - 60_000);

        const shown = text(issued.cert);
        expect(shown).toMatch(/Version: 3 \(0x2\)/);
        expect(shown).toMatch(/Basic Constraints: critical\s+CA:FALSE/);
        expect(shown).toMatch(
          keyType === 'rsa'
            ? /Key Usage: critical\s+Digital Signature, Key Encipherment\n/
            : /Key Usage: critical\s+Digital Signature\n/,
        );
        expect(shown).toMatch(/Extended Key Usage: \s*TLS Web Client Authentication\n/);
        expect(shown).toMatch(/Subject Key Identifier: \s*[0-9A-F:]{59}\n/);
        expect(shown).toContain(`Authority Key Identifier: \n                ${skiOf(made)}\n`);
        expect(shown).toContain(`Signature Algorithm: ${algorithm}`);

        const verified = verify(made, issued.cert);
        expect(verified.stdout + verified.stderr).toMatch(/: OK\n/);
        expect(verified.ok).toBe(true);
      });
    }
  }

  it('copies the issuer Name as the CA encodes it, UTF-8 and several attributes included', () => {
    const made = ca({ subject: '/C=DE/O=Früh Edge GmbH/OU=Ops/CN=Edge Root CA 1' });
    const issued = issueClientCertificate({ ca: authority(made), commonName: 'gw-1/filter' });
    expect(opensslOk(['x509', '-noout', '-issuer', '-nameopt', 'utf8', '-in', file(issued.cert)], folder.dir)).toBe(
      'issuer=C=DE, O=Früh Edge GmbH, OU=Ops, CN=Edge Root CA 1\n',
    );
    // Name matching in verification compares the encodings.
    expect(verify(made, issued.cert).ok).toBe(true);
  });

  it('encodes the common name as UTF8String: operators, non-ASCII, and names longer than X.520 suggests', () => {
    const made = ca();
    for (const commonName of [
      '$operator/alice',
      'gw-1/modül',
      'gw-1/filter/replica-2',
      `${'d'.repeat(128)}/${'m'.repeat(128)}`,
    ]) {
      const issued = issueClientCertificate({ ca: authority(made), commonName });
      expect(new X509Certificate(issued.cert).subject).toBe(`CN=${commonName}`);
      const parsed = opensslOk(['asn1parse', '-in', file(issued.cert)], folder.dir);
      expect(parsed).toContain(`UTF8STRING        :${commonName}`);
      expect(verify(made, issued.cert).ok).toBe(true);
    }
  });

  it('encodes lengths in short and long form: common names across the 127/128 and 255/256 octet boundaries', () => {
    const made = ca({ keyType: 'rsa' });
    for (const length of [1, 2, 60, 100, 110, 115, 120, 125, 126, 127, 128, 129, 240, 250, 254, 255, 256, 257, 1000]) {
      const commonName = 'm'.repeat(length);
      const issued = issueClientCertificate({ ca: authority(made), commonName });
      const cert = new X509Certificate(issued.cert);
      expect(cert.subject).toBe(`CN=${commonName}`);
      expect(cert.verify(new X509Certificate(made.cert).publicKey)).toBe(true);
    }
  });

  it('derives the authorityKeyIdentifier from the CA key when the CA has no subjectKeyIdentifier', () => {
    const made = ca({
      extensions: [
        'basicConstraints = critical, CA:TRUE',
        'subjectKeyIdentifier = none',
        'authorityKeyIdentifier = none',
      ],
    });
    expect(text(made.cert)).not.toContain('Subject Key Identifier');
    const issued = issueClientCertificate({ ca: authority(made), commonName: 'gw-1/filter' });
    // RFC 5280 method 1: SHA-1 of the subjectPublicKey bits, what openssl puts in a CA's SKI by default.
    const spki = new X509Certificate(made.cert).publicKey.export({ type: 'spki', format: 'der' });
    const bits = spki.subarray(spki.length - 65); // a P-256 point: 65 octets at the end of the SPKI
    const expected = createHash('sha1').update(bits).digest('hex').toUpperCase().match(/../g)!.join(':');
    expect(text(issued.cert)).toContain(`Authority Key Identifier: \n                ${expected}\n`);
    expect(openssl(['verify', '-CAfile', made.certFile, file(issued.cert)], folder.dir).ok).toBe(true);
  });

  it('takes validity days from 1 to 3650 and a serial number of 1 to 20 bytes', () => {
    const made = ca();
    const day = issueClientCertificate({ ca: authority(made), commonName: 'a/b', validityDays: 1 });
    expect(day.notAfter.getTime() - Date.now()).toBeLessThanOrEqual(86_400_000);
    expect(day.notAfter.getTime() - Date.now()).toBeGreaterThan(86_400_000 - 60_000);
    const decade = issueClientCertificate({ ca: authority(made), commonName: 'a/b', validityDays: 3650 });
    expect(Date.parse(new X509Certificate(decade.cert).validTo)).toBe(decade.notAfter.getTime());

    for (const [serialNumber, hex] of [
      [1n, '01'],
      [0x80n, '80'], // top bit set: DER adds a zero octet, the hex does not show it
      [2n ** 159n, `80${'00'.repeat(19)}`],
      [2n ** 160n - 1n, 'FF'.repeat(20)],
    ] as const) {
      const issued = issueClientCertificate({ ca: authority(made), commonName: 'a/b', serialNumber });
      expect(issued.serialNumber).toBe(hex);
      expect(new X509Certificate(issued.cert).serialNumber).toBe(hex);
      expect(verify(made, issued.cert).ok).toBe(true);
    }
    const serials = new Set(
      Array.from({ length: 20 }, () => issueClientCertificate({ ca: authority(made), commonName: 'a/b' }).serialNumber),
    );
    expect(serials.size).toBe(20);
    for (const serial of serials) expect(serial.length).toBeLessThanOrEqual(32);
  });

  describe('refuses', () => {
    const made = () => ca();
    const issue = (options: Partial<Parameters<typeof issueClientCertificate>[0]>) => () =>
      issueClientCertificate({ ca: authority(made()), commonName: 'gw-1/filter', ...options });

    it('bad arguments with TypeError or RangeError', () => {
      expect(issue({ commonName: '' })).toThrow(new RangeError('issueClientCertificate: commonName must not be empty'));
      for (const commonName of ['gw-1/\nfilter', 'gw-1/filter\u0000', 'a\u007f', 'a\u009bb', 'a\ud800']) {
        expect(issue({ commonName })).toThrow(RangeError);
        expect(issue({ commonName })).toThrow(/contains control characters/);
      }
      expect(issue({ commonName: 42 as unknown as string })).toThrow(TypeError);
      for (const validityDays of [0, -1, 3651, 1.5, Number.NaN]) {
        expect(issue({ validityDays })).toThrow(/validityDays must be a whole number of days from 1 to 3650/);
      }
      expect(issue({ validityDays: '30' as unknown as number })).toThrow(TypeError);
      expect(issue({ keyType: 'dsa' as 'ec' })).toThrow(RangeError);
      expect(issue({ serialNumber: 0n })).toThrow(/serialNumber must be positive and at most 20 bytes/);
      expect(issue({ serialNumber: 2n ** 160n })).toThrow(RangeError);
      expect(issue({ serialNumber: 5 as unknown as bigint })).toThrow(TypeError);
      expect(() => issueClientCertificate(undefined as never)).toThrow(TypeError);
      expect(() => issueClientCertificate({ ca: 'ca.pem' as never, commonName: 'a/b' })).toThrow(TypeError);
    });

    it('a CA key type other than RSA ≥ 2048, P-256 or P-384 with RangeError', () => {
      for (const keyType of ['ec-p521', 'ed25519', 'rsa-1024'] as const) {
        const other = ca({ keyType });
        expect(() => issueClientCertificate({ ca: authority(other), commonName: 'a/b' })).toThrow(RangeError);
      }
      expect(() => issueClientCertificate({ ca: authority(ca({ keyType: 'ed25519' })), commonName: 'a/b' })).toThrow(
        /ed25519 is not supported; use RSA \(2048 bits or more\), EC P-256 or P-384/,
      );
    });

    /** Expects `invalid-configuration` naming `option`, with neither key text nor the passphrase anywhere in it. */
    function expectInvalid(run: () => unknown, option: string, message: RegExp, secrets: readonly string[]): void {
      let caught: unknown;
      try {
        run();
      } catch (error) {
        caught = error;
      }
      expect(isEdgeKitError(caught, 'invalid-configuration'), String(caught)).toBe(true);
      if (!isEdgeKitError(caught)) return;
      expect(caught.details.option).toBe(option);
      expect(caught.message).toMatch(message);
      expectNoSecret(caught, secrets);
    }
    /** Lines of a PEM body: a key's text in pieces, so a part of it is caught too. */
    const pieces = (pem: string) => pem.split('\n').filter((line) => line.length > 20);

    it('a CA that cannot issue with EdgeKitError invalid-configuration, showing no key material', () => {
      const good = made();
      const leaf = ca({ extensions: ['basicConstraints = critical, CA:FALSE'] });
      const noCertSign = ca({ extensions: ['basicConstraints = critical, CA:TRUE', 'keyUsage = critical, cRLSign'] });
      const encrypted = ca({ keyType: 'ec', keyForm: 'encrypted-pkcs8', passphrase: 'hunter2-Zq7' });
      const rsaEncrypted = ca({ keyType: 'rsa', keyForm: 'encrypted-pkcs1', passphrase: 'hunter3-Wv4' });
      const other = ca({ keyType: 'rsa' });
      const secrets = [good, encrypted, rsaEncrypted, other].flatMap((m) => pieces(m.key));
      secrets.push('hunter2-Zq7', 'hunter3-Wv4');
      const run = (ca: { cert: string; key: string; passphrase?: string }) => () =>
        issueClientCertificate({ ca, commonName: 'gw-1/filter' });

      expectInvalid(
        run({ cert: 'not a certificate', key: good.key }),
        'ca.cert',
        /ca\.cert is not a PEM certificate/,
        secrets,
      );
      expectInvalid(run({ cert: good.key, key: good.key }), 'ca.cert', /not a PEM certificate/, secrets);
      expectInvalid(run(authority(leaf)), 'ca.cert', /is not a CA certificate/, secrets);
      expectInvalid(
        run(authority(noCertSign)),
        'ca.cert',
        /is not a CA certificate: it needs basicConstraints CA:TRUE and, with a keyUsage, keyCertSign/,
        secrets,
      );
      expectInvalid(run({ cert: good.cert, key: other.key }), 'ca.key', /ca\.key is not the key of ca\.cert/, secrets);
      expectInvalid(
        run({ cert: good.cert, key: ca({ keyType: 'ec', keyForm: 'sec1' }).key }),
        'ca.key',
        /not the key/,
        secrets,
      );
      expectInvalid(run({ cert: good.cert, key: good.cert }), 'ca.key', /ca\.key is not a PEM private key/, secrets);
      expectInvalid(
        run({ cert: encrypted.cert, key: encrypted.key }),
        'ca.passphrase',
        /encrypted; pass its ca\.passphrase/,
        secrets,
      );
      expectInvalid(
        run({ cert: encrypted.cert, key: encrypted.key, passphrase: 'wrong-Zq7' }),
        'ca.passphrase',
        /could not be decrypted with ca\.passphrase/,
        [...secrets, 'wrong-Zq7'],
      );
      expectInvalid(
        run({ cert: rsaEncrypted.cert, key: rsaEncrypted.key, passphrase: 'wrong-Wv4' }),
        'ca.passphrase',
        /could not be decrypted/,
        [...secrets, 'wrong-Wv4'],
      );
    });

    it('a CA outside its validity period with invalid-configuration', () => {
      const made = ca({ days: 1 });
      vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + 2 * 86_400_000 });
      expect(() => issueClientCertificate({ ca: authority(made), commonName: 'a/b' })).toThrow(
        /is valid from .* not now/,
      );
      vi.setSystemTime(Date.now() - 4 * 86_400_000);
      expect(() => createRevocationList({ ca: authority(made), revoked: [] })).toThrow(/not now/);
    });
  });
});

describe('createRevocationList', () => {
  it('lists revoked serials; openssl refuses a revoked certificate and accepts the others', () => {
    for (const caOptions of [{ keyType: 'ec' }, { keyType: 'rsa', keyForm: 'encrypted-pkcs8' }] as const) {
      const made = ca(caOptions);
      const issue = () => issueClientCertificate({ ca: authority(made), commonName: 'gw-1/filter' });
      const [revoked, alsoRevoked, kept] = [issue(), issue(), issue()];
      const revokedAt = new Date('2026-01-02T03:04:05.678Z');
      const crl = createRevocationList({
        ca: authority(made),
        revoked: [
          { serialNumber: revoked.serialNumber, revokedAt },
          // Any case and leading zeros: the same number.
          { serialNumber: `00${alsoRevoked.serialNumber.toLowerCase()}`, revokedAt },
        ],
      });
      const shown = crlText(crl);
      expect(shown).toMatch(/Version 2 \(0x1\)/);
      expect(shown).toContain(
        `Serial Number: ${revoked.serialNumber}\n        Revocation Date: Jan  2 03:04:05 2026 GMT`,
      );
      expect(shown).toContain(`Serial Number: ${alsoRevoked.serialNumber}\n`);
      expect(shown).not.toContain(kept.serialNumber);
      expect(shown).toContain(`Authority Key Identifier: \n                ${skiOf(made)}\n`);
      expect(shown).toMatch(/X509v3 CRL Number: \n\s+\d+\n/);
      expect(openssl(['crl', '-noout', '-CAfile', made.certFile, '-in', file(crl)], folder.dir).stderr).toBe(
        'verify OK\n',
      );

      const crlFile = file(crl);
      const refused = verify(made, revoked.cert, '-crl_check', '-CRLfile', crlFile);
      expect(refused.ok).toBe(false);
      expect(refused.stdout + refused.stderr).toMatch(/certificate revoked/);
      expect(verify(made, alsoRevoked.cert, '-crl_check', '-CRLfile', crlFile).ok).toBe(false);
      const accepted = verify(made, kept.cert, '-crl_check', '-CRLfile', crlFile);
      expect(accepted.stdout + accepted.stderr).toMatch(/: OK\n/);
    }
  });

  it('with nothing revoked, leaves the list out (RFC 5280) and openssl accepts every certificate', () => {
    const made = ca();
    const crl = createRevocationList({ ca: authority(made), revoked: [] });
    expect(crlText(crl)).toContain('No Revoked Certificates.');
    const issued = issueClientCertificate({ ca: authority(made), commonName: 'gw-1/filter' });
    expect(verify(made, issued.cert, '-crl_check', '-CRLfile', file(crl)).ok).toBe(true);
  });

  it('sets thisUpdate, nextUpdate and the CRL number; a list past its nextUpdate fails verification', () => {
    const made = ca();
    const issued = issueClientCertificate({ ca: authority(made), commonName: 'gw-1/filter' });
    const thisUpdate = new Date(Date.now() - 3_600_000);
    const crl = createRevocationList({
      ca: authority(made),
      revoked: [],
      thisUpdate,
      nextUpdateDays: 1,
      crlNumber: 4711n,
    });
    const shown = crlText(crl);
    const seconds = Math.floor(thisUpdate.getTime() / 1000);
    const [lastUpdate, nextUpdate] = [/Last Update: (.*)\n/, /Next Update: (.*)\n/].map((re) =>
      Date.parse(shown.match(re)![1]!),
    );
    expect(lastUpdate).toBe(seconds * 1000);
    expect(nextUpdate).toBe(seconds * 1000 + 86_400_000);
    expect(shown).toMatch(/CRL Number: \n\s+4711\n/);
    const crlFile = file(crl);
    expect(verify(made, issued.cert, '-crl_check', '-CRLfile', crlFile).ok).toBe(true);
    // Checked an hour after nextUpdate (within the CA's and the certificate's validity): "CRL has expired".
    const late = verify(
      made,
      issued.cert,
      '-crl_check',
      '-CRLfile',
      crlFile,
      '-attime',
      String(seconds + 86_400 + 3_600),
    );
    expect(late.ok).toBe(false);
    expect(late.stdout + late.stderr).toMatch(/CRL has expired/);
  });

  it('writes UTCTime for 1950–2049 and GeneralizedTime outside (RFC 5280)', () => {
    const made = ca();
    const crl = createRevocationList({
      ca: authority(made),
      revoked: [
        { serialNumber: '01', revokedAt: new Date('1949-12-31T23:59:59Z') },
        { serialNumber: '02', revokedAt: new Date('1950-01-01T00:00:00Z') },
      ],
      thisUpdate: new Date('2049-12-31T23:59:59Z'),
      nextUpdateDays: 1,
      crlNumber: 0n,
    });
    const parsed = opensslOk(['asn1parse', '-in', file(crl)], folder.dir);
    const times = [...parsed.matchAll(/(UTCTIME|GENERALIZEDTIME)\s+:(\S+)/g)].map((m) => `${m[1]} ${m[2]}`);
    expect(times).toEqual([
      'UTCTIME 491231235959Z',
      'GENERALIZEDTIME 20500101235959Z',
      'GENERALIZEDTIME 19491231235959Z',
      'UTCTIME 500101000000Z',
    ]);
    const shown = crlText(crl);
    expect(shown).toContain('Next Update: Jan  1 23:59:59 2050 GMT');
    expect(shown).toContain('Revocation Date: Dec 31 23:59:59 1949 GMT');
  });

  it('refuses bad entries and options with TypeError or RangeError, and a CA without cRLSign', () => {
    const made = ca();
    const create = (options: Partial<Parameters<typeof createRevocationList>[0]>) => () =>
      createRevocationList({ ca: authority(made), revoked: [], ...options });
    const at = new Date();
    expect(create({ revoked: [{ serialNumber: 'xyz', revokedAt: at }] })).toThrow(
      /revoked\[0\]\.serialNumber "xyz" is not hex/,
    );
    expect(create({ revoked: [{ serialNumber: '0x10', revokedAt: at }] })).toThrow(RangeError);
    expect(create({ revoked: [{ serialNumber: '00', revokedAt: at }] })).toThrow(/must be positive/);
    expect(create({ revoked: [{ serialNumber: 'FF'.repeat(21), revokedAt: at }] })).toThrow(/at most 20 bytes/);
    expect(
      create({
        revoked: [
          { serialNumber: '0a', revokedAt: at },
          { serialNumber: '0A', revokedAt: at },
        ],
      }),
    ).toThrow(/serial number 0A is listed twice/);
    expect(create({ revoked: [{ serialNumber: 10 as unknown as string, revokedAt: at }] })).toThrow(TypeError);
    expect(create({ revoked: [{ serialNumber: '0a', revokedAt: new Date(Number.NaN) }] })).toThrow(RangeError);
    expect(create({ revoked: [{ serialNumber: '0a', revokedAt: '2026-01-01' as unknown as Date }] })).toThrow(
      TypeError,
    );
    expect(create({ revoked: undefined as never })).toThrow(TypeError);
    expect(create({ nextUpdateDays: 0 })).toThrow(RangeError);
    expect(create({ thisUpdate: new Date('9999-12-31T00:00:00Z') })).toThrow(RangeError);
    expect(create({ crlNumber: -1n })).toThrow(/crlNumber must be non-negative/);

    const noCrlSign = ca({ extensions: ['basicConstraints = critical, CA:TRUE', 'keyUsage = critical, keyCertSign'] });
    let caught: unknown;
    try {
      createRevocationList({ ca: authority(noCrlSign), revoked: [] });
    } catch (error) {
      caught = error;
    }
    expect(isEdgeKitError(caught, 'invalid-configuration')).toBe(true);
    expect((caught as Error).message).toMatch(/keyUsage does not allow cRLSign/);
    // That CA may still issue certificates.
    expect(issueClientCertificate({ ca: authority(noCrlSign), commonName: 'a/b' }).cert).toMatch(/^-----BEGIN/);
  });
});
