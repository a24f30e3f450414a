// Client certificates and CRLs checked by independent readers: Node's X509Certificate and the openssl command line,
// against CAs that openssl made with each key type and key file form users have; CAs and server certificates made
// here, checked by the same readers and by real TLS handshakes.
import { createHash, createPrivateKey, X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import type { AddressInfo, Socket } from 'node:net';
import path from 'node:path';
import * as tls from 'node:tls';
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
import {
  type CertificateAuthority,
  createCertificateAuthority,
  createRevocationList,
  issueClientCertificate,
  issueServerCertificate,
} from './certificates.js';

/** What openssl shows of an end certificate: v3, not a CA, the key usages of its key type, TLS client or server. */
function expectEndCertificateText(shown: string, keyType: string, usage: 'Client' | 'Server'): void {
  expect(shown).toMatch(/Version: 3 \(0x2\)/);
  expect(shown).toMatch(/Basic Constraints: critical\s+CA:FALSE/);
  expect(shown).toMatch(
    keyType === 'rsa'
      ? /Key Usage: critical\s+Digital Signature, Key Encipherment\n/
      : /Key Usage: critical\s+Digital Signature\n/,
  );
  expect(shown).toMatch(new RegExp(`Extended Key Usage: \\s*TLS Web ${usage} Authentication\\n`));
}

/** An end certificate `issued` by `caCert`: signed by it, not a CA, its key, its serial and a year of validity. */
function expectIssuedBy(
  issued: { readonly key: string; readonly serialNumber: string; readonly notAfter: Date },
  cert: X509Certificate,
  caCert: X509Certificate,
  keyType: string,
  before: number,
): void {
  expect(cert.issuer).toBe(caCert.subject);
  expect(cert.checkIssued(caCert)).toBe(true);
  expect(cert.verify(caCert.publicKey)).toBe(true);
  expect(cert.ca).toBe(false);
  expect(cert.checkPrivateKey(createPrivateKey(issued.key))).toBe(true);
  expect(cert.publicKey.asymmetricKeyType).toBe(keyType);
  expect(cert.serialNumber).toBe(issued.serialNumber);
  expect(Date.parse(cert.validTo)).toBe(issued.notAfter.getTime());
  expect(issued.notAfter.getTime()).toBeGreaterThanOrEqual(before + 365 * 86_400_000 - 1_000);
}

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
function verify(made: Pick<OpensslCa, 'certFile'>, cert: string, ...extra: string[]) {
  return openssl(
    ['verify', '-x509_strict', '-purpose', 'sslclient', ...extra, '-CAfile', made.certFile, file(cert)],
    folder.dir,
  );
}
/** The CA's subjectKeyIdentifier as openssl prints it. */
function skiOf(made: Pick<OpensslCa, 'certFile'>): string {
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
        expectIssuedBy(issued, cert, caCert, keyType, before);
        expect(issued.notAfter.getTime()).toBeLessThanOrEqual(Date.now() + 365 * 86_400_000);
        // Backdated a little for brokers whose clock is behind, but valid now.
        expect(Date.parse(cert.validFrom)).toBeLessThan(before - 60_000);

        const shown = text(issued.cert);
        expectEndCertificateText(shown, keyType, 'Client');
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

/** The CA's certificate as a file, for the openssl helpers. */
const caFile = (made: CertificateAuthority) => ({ certFile: file(made.cert) });

describe('createCertificateAuthority', () => {
  it('makes a self-signed EC P-256 root CA named "edgekit hub CA" for ten years', () => {
    const before = Date.now();
    const made = createCertificateAuthority();
    const cert = new X509Certificate(made.cert);

    expect(cert.ca).toBe(true);
    expect(cert.subject).toBe('CN=edgekit hub CA');
    expect(cert.issuer).toBe(cert.subject);
    expect(cert.checkIssued(cert)).toBe(true);
    expect(cert.verify(cert.publicKey)).toBe(true);
    expect(made.key).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    expect(cert.checkPrivateKey(createPrivateKey(made.key))).toBe(true);
    expect(cert.publicKey.asymmetricKeyType).toBe('ec');
    expect(cert.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    expect(cert.serialNumber).toBe(made.serialNumber);
    expect(Date.parse(cert.validTo)).toBe(made.notAfter.getTime());
    expect(made.notAfter.getTime()).toBeGreaterThanOrEqual(before + 3650 * 86_400_000 - 1_000);
    expect(made.notAfter.getTime()).toBeLessThanOrEqual(Date.now() + 3650 * 86_400_000);
    expect(Date.parse(cert.validFrom)).toBeLessThan(before - 60_000);

    const shown = text(made.cert);
    expect(shown).toMatch(/Version: 3 \(0x2\)/);
    expect(shown).toMatch(/Basic Constraints: critical\s+CA:TRUE, pathlen:0\n/);
    expect(shown).toMatch(/Key Usage: critical\s+Certificate Sign, CRL Sign\n/);
    expect(shown).toContain('Signature Algorithm: ecdsa-with-SHA256');
    const ski = shown.match(/Subject Key Identifier: \s*([0-9A-F:]{59})\n/)?.[1];
    expect(ski).toBeDefined();
    expect(shown).toContain(`Authority Key Identifier: \n                ${ski}\n`);
    const own = caFile(made);
    const verified = openssl(['verify', '-x509_strict', '-CAfile', own.certFile, own.certFile], folder.dir);
    expect(verified.stdout + verified.stderr).toMatch(/: OK\n/);
  });

  it('takes a common name, an RSA key (3072 bits) and validity from 1 to 36500 days', () => {
    const made = createCertificateAuthority({ commonName: 'Früh Edge Hub CA', keyType: 'rsa', validityDays: 1 });
    const cert = new X509Certificate(made.cert);
    expect(cert.ca).toBe(true);
    expect(cert.subject).toBe('CN=Früh Edge Hub CA');
    expect(cert.verify(cert.publicKey)).toBe(true);
    expect(cert.publicKey.asymmetricKeyType).toBe('rsa');
    expect(cert.publicKey.asymmetricKeyDetails?.modulusLength).toBe(3072);
    expect(cert.checkPrivateKey(createPrivateKey(made.key))).toBe(true);
    expect(made.notAfter.getTime() - Date.now()).toBeLessThanOrEqual(86_400_000);
    expect(made.notAfter.getTime() - Date.now()).toBeGreaterThan(86_400_000 - 60_000);
    expect(text(made.cert)).toContain('Signature Algorithm: sha256WithRSAEncryption');
    expect(opensslOk(['asn1parse', '-in', file(made.cert)], folder.dir)).toContain(
      'UTF8STRING        :Früh Edge Hub CA',
    );

    // A century: notAfter as GeneralizedTime.
    const long = createCertificateAuthority({ validityDays: 36500 });
    expect(Date.parse(new X509Certificate(long.cert).validTo)).toBe(long.notAfter.getTime());
    expect(long.notAfter.getUTCFullYear()).toBeGreaterThanOrEqual(new Date().getUTCFullYear() + 99);
    expect(opensslOk(['asn1parse', '-in', file(long.cert)], folder.dir)).toMatch(/GENERALIZEDTIME\s+:\d{14}Z/);
  });

  it('makes a new key and serial number each time', () => {
    const [a, b] = [createCertificateAuthority(), createCertificateAuthority()];
    expect(a.serialNumber).not.toBe(b.serialNumber);
    expect(a.key).not.toBe(b.key);
    expect(new X509Certificate(a.cert).verify(new X509Certificate(b.cert).publicKey)).toBe(false);
  });

  it('is a CA that issueClientCertificate and createRevocationList accept, and openssl verifies their output', () => {
    for (const keyType of ['ec', 'rsa'] as const) {
      const made = createCertificateAuthority({ keyType });
      const own = caFile(made);
      const [kept, revoked] = [1, 2].map(() => issueClientCertificate({ ca: made, commonName: 'gw-1/filter' }));
      const client = new X509Certificate(kept!.cert);
      expect(client.checkIssued(new X509Certificate(made.cert))).toBe(true);
      expect(client.verify(new X509Certificate(made.cert).publicKey)).toBe(true);
      expect(text(kept!.cert)).toContain(`Authority Key Identifier: \n                ${skiOf(own)}\n`);

      const crl = createRevocationList({
        ca: made,
        revoked: [{ serialNumber: revoked!.serialNumber, revokedAt: new Date() }],
      });
      const crlFile = file(crl);
      const accepted = verify(own, kept!.cert, '-crl_check', '-CRLfile', crlFile);
      expect(accepted.stdout + accepted.stderr).toMatch(/: OK\n/);
      const refused = verify(own, revoked!.cert, '-crl_check', '-CRLfile', crlFile);
      expect(refused.stdout + refused.stderr).toMatch(/certificate revoked/);
    }
  });

  it('refuses bad arguments with TypeError or RangeError', () => {
    expect(() => createCertificateAuthority({ commonName: '' })).toThrow(
      new RangeError('createCertificateAuthority: commonName must not be empty'),
    );
    expect(() => createCertificateAuthority({ commonName: 'hub\nCA' })).toThrow(/contains control characters/);
    expect(() => createCertificateAuthority({ commonName: 7 as unknown as string })).toThrow(TypeError);
    for (const validityDays of [0, -1, 36501, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => createCertificateAuthority({ validityDays })).toThrow(
        /createCertificateAuthority: validityDays must be a whole number of days from 1 to 36500/,
      );
    }
    expect(() => createCertificateAuthority({ validityDays: '10' as unknown as number })).toThrow(TypeError);
    expect(() => createCertificateAuthority({ keyType: 'ed25519' as 'ec' })).toThrow(
      new RangeError(`createCertificateAuthority: keyType must be 'ec' or 'rsa', got "ed25519"`),
    );
    expect(() => createCertificateAuthority(null as never)).toThrow(TypeError);
    expect(() => createCertificateAuthority('hub' as never)).toThrow(TypeError);
  });
});

interface Handshake {
  /** The client's view: whether the chain verified, and why not. */
  readonly authorized: boolean;
  readonly authorizationError?: Error | undefined;
  /** The client's error when the connection failed (with the default rejectUnauthorized, a refused server). */
  readonly error?: Error & { code?: string };
  /** The server's view when the handshake completed: whether the client's certificate verified, and its CN. */
  readonly server?: { readonly authorized: boolean; readonly peer: string | string[] | undefined };
}

/** A TLS server with `serverOptions` on 127.0.0.1 and one client connection to it with `clientOptions`. */
async function handshake(serverOptions: tls.TlsOptions, clientOptions: tls.ConnectionOptions): Promise<Handshake> {
  const server = tls.createServer(serverOptions);
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('error', () => {}); // a client that refuses the server resets the connection
  });
  server.on('tlsClientError', () => {});
  const accepted = new Promise<tls.TLSSocket>((resolve) => server.once('secureConnection', resolve));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const { port } = server.address() as AddressInfo;
    return await new Promise<Handshake>((resolve) => {
      const client = tls.connect({ port, host: '127.0.0.1', ...clientOptions });
      client.on('error', (error) => {
        resolve({ authorized: false, error });
        client.destroy();
      });
      client.once('secureConnect', () => {
        void accepted.then((peer) => {
          const subject = (peer.getPeerCertificate() as Partial<tls.PeerCertificate>).subject;
          resolve({
            authorized: client.authorized,
            authorizationError: client.authorizationError,
            server: { authorized: peer.authorized, peer: subject?.CN },
          });
          client.end();
        });
      });
    });
  } finally {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  }
}

describe('issueServerCertificate', () => {
  for (const [caKind, makeAuthority] of [
    ['a CA made here (EC)', () => createCertificateAuthority()],
    ['a CA made here (RSA)', () => createCertificateAuthority({ keyType: 'rsa' })],
    [
      'an openssl CA (EC P-384, encrypted key)',
      () => authority(ca({ keyType: 'ec-p384', keyForm: 'encrypted-pkcs8' })),
    ],
    ['an openssl CA (RSA, PKCS#1)', () => authority(ca({ keyType: 'rsa', keyForm: 'pkcs1' }))],
  ] as const) {
    for (const keyType of ['ec', 'rsa'] as const) {
      it(`issues a ${keyType} server certificate from ${caKind} that Node and openssl check by name and address`, () => {
        const made: CertificateAuthority = makeAuthority();
        const before = Date.now();
        const issued = issueServerCertificate({
          ca: made,
          dnsNames: ['localhost', 'hub.local'],
          ipAddresses: ['127.0.0.1', '::1'],
          keyType,
        });
        const cert = new X509Certificate(issued.cert);
        const caCert = new X509Certificate(made.cert);

        expect(cert.subject).toBe('CN=localhost');
        expectIssuedBy(issued, cert, caCert, keyType, before);
        expect(Date.parse(cert.validFrom)).toBeLessThan(before - 60_000);

        expect(cert.subjectAltName).toBe(
          'DNS:localhost, DNS:hub.local, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1',
        );
        expect(cert.checkHost('localhost')).toBe('localhost');
        expect(cert.checkHost('HUB.local')).toBe('hub.local');
        expect(cert.checkIP('127.0.0.1')).toBe('127.0.0.1');
        expect(cert.checkIP('::1')).toBe('::1');
        expect(cert.checkHost('other')).toBeUndefined();
        expect(cert.checkHost('127.0.0.1')).toBeUndefined();
        expect(cert.checkIP('127.0.0.2')).toBeUndefined();

        const shown = text(issued.cert);
        expectEndCertificateText(shown, keyType, 'Server');
        expect(shown).toMatch(
          /Subject Alternative Name: \s*DNS:localhost, DNS:hub.local, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1\n/,
        );
        expect(shown).not.toMatch(/Subject Alternative Name: critical/);
        const own = caFile(made);
        expect(shown).toContain(`Authority Key Identifier: \n                ${skiOf(own)}\n`);

        const check = (...extra: string[]) =>
          openssl(
            ['verify', '-x509_strict', '-purpose', 'sslserver', ...extra, '-CAfile', own.certFile, file(issued.cert)],
            folder.dir,
          );
        const verified = check('-verify_hostname', 'hub.local');
        expect(verified.stdout + verified.stderr).toMatch(/: OK\n/);
        expect(check('-verify_ip', '::1').ok).toBe(true);
        expect(check('-verify_hostname', 'other.local').ok).toBe(false);
        expect(check('-verify_ip', '10.0.0.1').ok).toBe(false);
        // A server certificate is no client certificate.
        expect(verify(own, issued.cert).ok).toBe(false);
      });
    }
  }

  it('encodes IPv4 in 4 octets and IPv6 in 16, whatever the text form', () => {
    const made = createCertificateAuthority();
    const cases: readonly [string, string][] = [
      ['192.0.2.1', 'IP Address:192.0.2.1'],
      ['0.0.0.0', 'IP Address:0.0.0.0'],
      ['255.255.255.255', 'IP Address:255.255.255.255'],
      ['::', 'IP Address:0:0:0:0:0:0:0:0'],
      ['2001:db8::8a2e:370:7334', 'IP Address:2001:DB8:0:0:0:8A2E:370:7334'],
      ['2001:0DB8:0000:0000:0000:0000:0000:0001', 'IP Address:2001:DB8:0:0:0:0:0:1'],
      ['fe80::', 'IP Address:FE80:0:0:0:0:0:0:0'],
      ['1::2:3:4:5:6:7', 'IP Address:1:0:2:3:4:5:6:7'],
      ['1:2:3:4:5:6:7::', 'IP Address:1:2:3:4:5:6:7:0'],
      ['::ffff:192.0.2.1', 'IP Address:0:0:0:0:0:FFFF:C000:201'],
      ['64:ff9b::203.0.113.9', 'IP Address:64:FF9B:0:0:0:0:CB00:7109'],
    ];
    const issued = issueServerCertificate({ ca: made, ipAddresses: cases.map(([address]) => address) });
    const cert = new X509Certificate(issued.cert);
    expect(cert.subject).toBe('CN=192.0.2.1');
    expect(text(issued.cert)).toContain(
      `Subject Alternative Name: \n                ${cases.map(([, shown]) => shown).join(', ')}\n`,
    );
    for (const [address] of cases) expect(cert.checkIP(address), address).toBeDefined();
    expect(cert.checkIP('2001:db8::8a2e:370:7335')).toBeUndefined();
    // The octet strings themselves: 4 and 16 octets.
    const parsed = opensslOk(
      ['asn1parse', '-in', file(issued.cert), '-strparse', String(sanOffset(issued.cert))],
      folder.dir,
    );
    expect(parsed).toMatch(/l=\s*4 prim: cont \[ 7 \]/);
    expect(parsed).toMatch(/l=\s*16 prim: cont \[ 7 \]/);
    expect(parsed).not.toMatch(/l=\s*(?!4 |16 )\d+ prim: cont \[ 7 \]/);
  });

  it('takes wildcards, underscores and a common name of its own; without DNS names the CN is the first address', () => {
    const made = createCertificateAuthority();
    const issued = issueServerCertificate({
      ca: made,
      commonName: 'Edge hub',
      dnsNames: ['*.hub.local', 'edge_hub', `${'a'.repeat(63)}.example`],
    });
    const cert = new X509Certificate(issued.cert);
    expect(cert.subject).toBe('CN=Edge hub');
    expect(cert.checkHost('broker.hub.local')).toBe('*.hub.local');
    expect(cert.checkHost('a.b.hub.local')).toBeUndefined();
    expect(cert.checkHost('edge_hub')).toBe('edge_hub');
    expect(
      opensslOk(['asn1parse', '-in', file(issued.cert), '-strparse', String(sanOffset(issued.cert))], folder.dir),
    ).toMatch(/l=\s*11 prim: cont \[ 2 \]/);
    expect(new X509Certificate(issueServerCertificate({ ca: made, ipAddresses: ['::1'] }).cert).subject).toBe('CN=::1');
  });

  describe('serves TLS', () => {
    it('a client that trusts the CA connects by name and by address; one that trusts another CA is refused', async () => {
      const made = createCertificateAuthority();
      for (const keyType of ['ec', 'rsa'] as const) {
        const server = issueServerCertificate({
          ca: made,
          dnsNames: ['localhost'],
          ipAddresses: ['127.0.0.1'],
          keyType,
        });
        const serverOptions = { cert: server.cert, key: server.key };

        const byName = await handshake(serverOptions, { servername: 'localhost', ca: made.cert });
        expect(byName.error).toBeUndefined();
        expect(byName.authorized).toBe(true);
        expect(byName.authorizationError).toBeNull();
        // Without a servername the client checks the address it connected to.
        const byAddress = await handshake(serverOptions, { ca: made.cert });
        expect(byAddress.error).toBeUndefined();
        expect(byAddress.authorized).toBe(true);
        // TLS 1.2 too (ECDHE with the certificate's key signing).
        const tls12 = await handshake(serverOptions, { servername: 'localhost', ca: made.cert, maxVersion: 'TLSv1.2' });
        expect(tls12.authorized).toBe(true);

        const wrongName = await handshake(serverOptions, { servername: 'other', ca: made.cert });
        expect(wrongName.error?.code).toBe('ERR_TLS_CERT_ALTNAME_INVALID');
      }

      const server = issueServerCertificate({ ca: made, dnsNames: ['localhost'] });
      const otherCa = createCertificateAuthority();
      const serverOptions = { cert: server.cert, key: server.key };
      const refused = await handshake(serverOptions, { servername: 'localhost', ca: otherCa.cert });
      expect(refused.authorized).toBe(false);
      expect(refused.error?.code).toBe('UNABLE_TO_VERIFY_LEAF_SIGNATURE');
      const unchecked = await handshake(serverOptions, {
        servername: 'localhost',
        ca: otherCa.cert,
        rejectUnauthorized: false,
      });
      expect(unchecked.error).toBeUndefined();
      expect(unchecked.authorized).toBe(false);
      // Node gives the OpenSSL code here, typed as an Error.
      expect(String(unchecked.authorizationError)).toBe('UNABLE_TO_VERIFY_LEAF_SIGNATURE');
    });

    it('with client certificates from the same CA (mutual TLS)', async () => {
      const made = createCertificateAuthority();
      const server = issueServerCertificate({ ca: made, dnsNames: ['localhost'] });
      const client = issueClientCertificate({ ca: made, commonName: 'gw-1/filter' });
      const result = await handshake(
        { cert: server.cert, key: server.key, ca: made.cert, requestCert: true, rejectUnauthorized: true },
        { servername: 'localhost', ca: made.cert, cert: client.cert, key: client.key },
      );
      expect(result.error).toBeUndefined();
      expect(result.authorized).toBe(true);
      expect(result.server).toEqual({ authorized: true, peer: 'gw-1/filter' });
    });
  });

  describe('refuses', () => {
    const made = createCertificateAuthority();
    const issue = (options: Partial<Parameters<typeof issueServerCertificate>[0]>) => () =>
      issueServerCertificate({ ca: made, dnsNames: ['localhost'], ...options });

    it('a certificate without names', () => {
      const none = /issueServerCertificate: give at least one of dnsNames and ipAddresses/;
      expect(() => issueServerCertificate({ ca: made })).toThrow(RangeError);
      expect(() => issueServerCertificate({ ca: made })).toThrow(none);
      expect(() => issueServerCertificate({ ca: made, dnsNames: [], ipAddresses: [] })).toThrow(none);
    });

    it('malformed DNS names and addresses with TypeError or RangeError', () => {
      expect(issue({ dnsNames: 'localhost' as unknown as string[] })).toThrow(
        new TypeError('issueServerCertificate: dnsNames must be an array of strings'),
      );
      expect(issue({ dnsNames: [42 as unknown as string] })).toThrow(TypeError);
      for (const dnsName of [
        '',
        'hub..local',
        'hub.local.',
        '.hub',
        '-hub.local',
        'hub-.local',
        'hub local',
        'bücher.de',
        'hub/local',
        'a.*.local',
        'h*.local',
        'x'.repeat(64),
        `${'a.'.repeat(126)}ab`,
      ]) {
        expect(issue({ dnsNames: [dnsName] }), dnsName).toThrow(/dnsNames\[0\] .* is not a DNS name/);
      }
      for (const dnsName of ['*', '*.local']) {
        expect(issue({ dnsNames: [dnsName] }), dnsName).toThrow(/a wildcard needs two labels after it/);
      }
      expect(issue({ dnsNames: ['localhost', '127.0.0.1'] })).toThrow(
        new RangeError('issueServerCertificate: dnsNames[1] "127.0.0.1" is an IP address; list it in ipAddresses'),
      );
      expect(issue({ dnsNames: ['::1'] })).toThrow(/list it in ipAddresses/);
      expect(issue({ dnsNames: ['hub.local', 'HUB.local'] })).toThrow(
        new RangeError('issueServerCertificate: dnsNames[1] "HUB.local" is listed twice'),
      );

      expect(issue({ ipAddresses: '127.0.0.1' as unknown as string[] })).toThrow(TypeError);
      expect(issue({ ipAddresses: [0x7f000001 as unknown as string] })).toThrow(TypeError);
      for (const address of ['256.0.0.1', '01.2.3.4', '1.2.3', 'localhost', '1:2:3:4:5:6:7:8:9', '::1::', '']) {
        expect(issue({ ipAddresses: [address] }), address).toThrow(
          /ipAddresses\[0\] .* is not an IPv4 or IPv6 address/,
        );
      }
      expect(issue({ ipAddresses: ['fe80::1%eth0'] })).toThrow(/has a zone index, which a certificate cannot carry/);
      expect(issue({ ipAddresses: ['::1', '0:0:0:0:0:0:0:1'] })).toThrow(
        /ipAddresses\[1\] "0:0:0:0:0:0:0:1" is listed twice/,
      );
      // The same address as IPv4 and as IPv4-mapped IPv6 are different octets, both allowed.
      expect(issue({ ipAddresses: ['192.0.2.1', '::ffff:192.0.2.1'] })).not.toThrow();
    });

    it('other bad options with TypeError or RangeError', () => {
      expect(issue({ commonName: '' })).toThrow(new RangeError('issueServerCertificate: commonName must not be empty'));
      expect(issue({ commonName: 'hub\u0000' })).toThrow(/contains control characters/);
      expect(issue({ commonName: 1 as unknown as string })).toThrow(TypeError);
      for (const validityDays of [0, 3651, 2.5]) {
        expect(issue({ validityDays })).toThrow(/validityDays must be a whole number of days from 1 to 3650/);
      }
      expect(issue({ validityDays: '1' as unknown as number })).toThrow(TypeError);
      expect(issue({ keyType: 'dsa' as 'ec' })).toThrow(RangeError);
      expect(() => issueServerCertificate(undefined as never)).toThrow(TypeError);
      expect(() => issueServerCertificate({ ca: 'ca.pem' as never, dnsNames: ['localhost'] })).toThrow(TypeError);
    });

    it('a server certificate as the CA with invalid-configuration', () => {
      const server = issueServerCertificate({ ca: made, dnsNames: ['localhost'] });
      let caught: unknown;
      try {
        issueServerCertificate({ ca: server, dnsNames: ['other'] });
      } catch (error) {
        caught = error;
      }
      expect(isEdgeKitError(caught, 'invalid-configuration')).toBe(true);
      expect((caught as Error).message).toMatch(/is not a CA certificate/);
      expect(() => issueClientCertificate({ ca: server, commonName: 'a/b' })).toThrow(/is not a CA certificate/);
    });
  });
});

/** The offset of the subjectAltName extension's value (the GeneralNames) in the certificate, for asn1parse -strparse. */
function sanOffset(cert: string): number {
  const parsed = opensslOk(['asn1parse', '-in', file(cert)], folder.dir).split('\n');
  const at = parsed.findIndex((line) => line.includes('X509v3 Subject Alternative Name'));
  const value = parsed.slice(at + 1).find((line) => line.includes('OCTET STRING'));
  const offset = value?.match(/^\s*(\d+):/)?.[1];
  if (offset === undefined) throw new Error('no subjectAltName');
  return Number(offset);
}
