/**
 * Client certificates and certificate revocation lists for brokers that take a client's identity from its
 * certificate's common name (Mosquitto's `use_identity_as_username`, RabbitMQ's EXTERNAL mechanism), issued from a CA
 * the user gives; and, for a hub without a CA of its own, a self-signed CA and TLS server certificates from it.
 * `node:crypto` generates keys and signs but builds no X.509 structures: the DER writer and reader are in der.ts.
 */
import { createPrivateKey, generateKeyPairSync, type KeyObject, sign, X509Certificate } from 'node:crypto';
import { EdgeKitError } from '../errors.js';
import {
  checkCommonName,
  checkCount,
  checkDate,
  checkDays,
  checkDnsName,
  checkKeyType,
  checkList,
  hex,
  ipOctets,
  randomSerial,
  wholeSeconds,
} from './certificate-options.js';
import {
  bitString,
  type CaFields,
  explicit,
  extension,
  implicitOctets,
  integer,
  KEY_USAGE,
  keyIdentifier,
  NULL,
  namedBits,
  OID,
  octetString,
  oid,
  pem,
  readCaFields,
  sequence,
  set,
  TRUE,
  time,
  utf8String,
} from './der.js';

/** The issuing CA: its certificate and private key as PEM text. */
export interface CertificateAuthority {
  /**
   * The CA certificate (PEM; of a bundle, the first certificate). It must be a CA (basicConstraints CA:TRUE), valid
   * now, and, when it has a keyUsage extension, allow keyCertSign, and cRLSign to sign revocation lists.
   */
  readonly cert: string;
  /**
   * Its private key as PEM, in any form Node's `createPrivateKey` reads: PKCS#8 (encrypted or not), PKCS#1 RSA, SEC1
   * EC. RSA of 2048 bits or more, EC P-256 or P-384.
   */
  readonly key: string;
  /** The passphrase of an encrypted key. */
  readonly passphrase?: string;
}

/** Options for {@link issueClientCertificate}. */
export interface IssueClientCertificateOptions {
  readonly ca: CertificateAuthority;
  /**
   * The subject's common name, which the broker takes as the user name: `<device>/<module>`, `$operator/<name>`, or
   * another user name the broker knows. Encoded as UTF8String; must not be empty or contain control characters.
   */
  readonly commonName: string;
  /** Days from now until the certificate expires: an integer from 1 to 3650; default 365. */
  readonly validityDays?: number;
  /** The new key: `ec` (P-256, default) or `rsa` (2048 bits). */
  readonly keyType?: 'ec' | 'rsa';
  /** A positive serial number of at most 20 bytes; default 16 random bytes (127 random bits). */
  readonly serialNumber?: bigint;
}

/** What {@link issueClientCertificate} and {@link issueServerCertificate} return. */
export interface IssuedClientCertificate {
  /** The certificate, PEM. */
  readonly cert: string;
  /** Its private key, unencrypted PKCS#8 PEM: store it where only the module (or the server) can read it. */
  readonly key: string;
  /** The serial number as uppercase hex, as `X509Certificate#serialNumber` shows it; what a CRL entry names. */
  readonly serialNumber: string;
  /** The end of the validity period (whole seconds). */
  readonly notAfter: Date;
}

/** Options for {@link createCertificateAuthority}. */
export interface CreateCertificateAuthorityOptions {
  /** The CA's common name, its whole subject; encoded as UTF8String. Default `edgekit hub CA`. */
  readonly commonName?: string;
  /** Days from now until the CA expires: an integer from 1 to 36500; default 3650. */
  readonly validityDays?: number;
  /** The CA key: `ec` (P-256, default) or `rsa` (3072 bits). */
  readonly keyType?: 'ec' | 'rsa';
}

/** What {@link createCertificateAuthority} returns: a {@link CertificateAuthority} to issue from, and its facts. */
export interface CreatedCertificateAuthority extends CertificateAuthority {
  /** The CA certificate, PEM: what clients and servers trust (their `ca` option, a broker's `cafile`). */
  readonly cert: string;
  /** Its private key, unencrypted PKCS#8 PEM: whoever reads it can issue certificates that every peer trusts. */
  readonly key: string;
  /** The serial number as uppercase hex, as `X509Certificate#serialNumber` shows it. */
  readonly serialNumber: string;
  /** The end of the validity period (whole seconds): no certificate the CA issued is accepted after it. */
  readonly notAfter: Date;
}

/** Options for {@link issueServerCertificate}. */
export interface IssueServerCertificateOptions {
  readonly ca: CertificateAuthority;
  /**
   * The subject's common name; default the first DNS name, else the first IP address. Clients match the server's name
   * against the subjectAltName only, so it is a label for people. Rules as
   * {@link IssueClientCertificateOptions.commonName}.
   */
  readonly commonName?: string;
  /**
   * Host names clients connect by (their `servername`), in ASCII (an internationalised name as its `xn--` form):
   * dot-separated labels of letters, digits, hyphens and underscores, at most 63 characters each and 253 in all, no
   * trailing dot. A first label `*` matches any one label, and needs two labels after it (`*.hub.local`).
   */
  readonly dnsNames?: readonly string[];
  /** IPv4 or IPv6 addresses clients connect to without a name, as text (`127.0.0.1`, `::1`); no zone index. */
  readonly ipAddresses?: readonly string[];
  /**
   * Days from now until the certificate expires: an integer from 1 to 3650; default 365. Apple platforms refuse TLS
   * server certificates valid for more than 825 days.
   */
  readonly validityDays?: number;
  /** The new key: `ec` (P-256, default) or `rsa` (2048 bits). */
  readonly keyType?: 'ec' | 'rsa';
}

/** One entry of a revocation list. */
export interface RevokedCertificate {
  /** The certificate's serial number in hex (either case, leading zeros allowed), e.g. from {@link IssuedClientCertificate}. */
  readonly serialNumber: string;
  /** When it was revoked. */
  readonly revokedAt: Date;
}

/** Options for {@link createRevocationList}. */
export interface CreateRevocationListOptions {
  readonly ca: CertificateAuthority;
  /** The certificates the CA revoked; none gives an empty list. */
  readonly revoked: ReadonlyArray<RevokedCertificate>;
  /** When the list is issued; default five minutes ago (see {@link issueClientCertificate} on clock skew). */
  readonly thisUpdate?: Date;
  /**
   * Days after `thisUpdate` by which a newer list will be issued: an integer from 1 to 3650; default 30. A broker that
   * checks revocation refuses every client of the CA once this date has passed, so issue a new list before.
   */
  readonly nextUpdateDays?: number;
  /**
   * The list's sequence number (cRLNumber), non-negative and growing with each list the CA issues; default the
   * milliseconds of `thisUpdate` since 1970, which grows as long as the issuing clock does.
   */
  readonly crlNumber?: bigint;
}

const DAY_MS = 86_400_000;
/**
 * How far back notBefore and the default thisUpdate are set: a broker whose clock is a little behind the issuer's
 * would otherwise refuse a fresh certificate, or every client when a fresh revocation list is "not yet valid".
 */
const CLOCK_SKEW_MS = 5 * 60_000;

// ---------------------------------------------------------------------------------------------------------------
// The CA.

interface Signer {
  /** The AlgorithmIdentifier, both inside the signed part and next to the signature. */
  readonly algorithm: Buffer;
  readonly hash: 'sha256' | 'sha384';
  readonly key: KeyObject;
}

interface LoadedCa {
  readonly subject: Buffer;
  /** For authorityKeyIdentifier: the CA's own subjectKeyIdentifier, else the hash of its key. */
  readonly keyIdentifier: Buffer;
  readonly signer: Signer;
}

function invalid(message: string, option: string, cause?: unknown): EdgeKitError {
  return new EdgeKitError('invalid-configuration', message, {
    details: { option },
    ...(cause === undefined ? {} : { cause }),
  });
}

function signerFor(key: KeyObject, what: string): Signer {
  const type = key.asymmetricKeyType;
  const details = key.asymmetricKeyDetails ?? {};
  if (type === 'rsa') {
    const bits = details.modulusLength ?? 0;
    if (bits < 2048) throw new RangeError(`${what}: an RSA CA key needs at least 2048 bits, this one has ${bits}`);
    return { algorithm: sequence(oid(OID.sha256WithRSAEncryption), NULL), hash: 'sha256', key };
  }
  if (type === 'ec' && details.namedCurve === 'prime256v1') {
    return { algorithm: sequence(oid(OID.ecdsaWithSHA256)), hash: 'sha256', key };
  }
  if (type === 'ec' && details.namedCurve === 'secp384r1') {
    return { algorithm: sequence(oid(OID.ecdsaWithSHA384)), hash: 'sha384', key };
  }
  const kind = type === 'ec' ? `EC ${details.namedCurve ?? 'unknown curve'}` : String(type);
  throw new RangeError(
    `${what}: a CA key of type ${kind} is not supported; use RSA (2048 bits or more), EC P-256 or P-384`,
  );
}

/** Checks the CA for `use` and reads what signing needs; no message repeats key or passphrase text. */
function loadCa(ca: CertificateAuthority, use: 'certificates' | 'lists', what: string, now: number): LoadedCa {
  if (typeof ca !== 'object' || ca === null) throw new TypeError(`${what}: ca must be an object { cert, key }`);
  if (typeof ca.cert !== 'string') throw new TypeError(`${what}: ca.cert must be PEM text, got ${typeof ca.cert}`);
  if (typeof ca.key !== 'string') throw new TypeError(`${what}: ca.key must be PEM text, got ${typeof ca.key}`);
  if (ca.passphrase !== undefined && typeof ca.passphrase !== 'string') {
    throw new TypeError(`${what}: ca.passphrase must be a string, got ${typeof ca.passphrase}`);
  }
  let cert: X509Certificate;
  // Node separates the attributes of a name with newlines; one line reads better in a message.
  const subjectOf = (c: X509Certificate) => c.subject.replaceAll('\n', ', ');
  try {
    cert = new X509Certificate(ca.cert);
  } catch (error) {
    throw invalid(`${what}: ca.cert is not a PEM certificate`, 'ca.cert', error);
  }
  // OpenSSL's test, as Node exposes it: basicConstraints CA:TRUE and, when there is a keyUsage, keyCertSign.
  if (!cert.ca) {
    throw invalid(
      `${what}: ca.cert (${subjectOf(cert)}) is not a CA certificate: it needs basicConstraints CA:TRUE and, with a keyUsage, keyCertSign`,
      'ca.cert',
    );
  }
  const validFrom = Date.parse(cert.validFrom);
  const validTo = Date.parse(cert.validTo);
  if (!(now >= validFrom && now <= validTo)) {
    throw invalid(`${what}: ca.cert is valid from ${cert.validFrom} to ${cert.validTo}, not now`, 'ca.cert');
  }
  let fields: CaFields;
  try {
    fields = readCaFields(cert.raw);
  } catch (error) {
    throw invalid(`${what}: ca.cert could not be read (${(error as Error).message})`, 'ca.cert');
  }
  if (use === 'lists' && fields.keyUsage !== undefined && !fields.keyUsage.has(KEY_USAGE.cRLSign)) {
    throw invalid(`${what}: ca.cert's keyUsage does not allow cRLSign`, 'ca.cert');
  }

  let key: KeyObject;
  try {
    key = createPrivateKey({
      key: ca.key,
      format: 'pem',
      ...(ca.passphrase === undefined ? {} : { passphrase: ca.passphrase }),
    });
  } catch (error) {
    // Node's messages name the failing OpenSSL routine, never the key; the code says which case it is.
    const code = (error as { code?: unknown }).code;
    if (
      ca.passphrase === undefined &&
      /^(-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type: 4,ENCRYPTED)/m.test(ca.key)
    ) {
      throw invalid(`${what}: ca.key is encrypted; pass its ca.passphrase`, 'ca.passphrase', error);
    }
    if (code === 'ERR_OSSL_BAD_DECRYPT') {
      throw invalid(`${what}: ca.key could not be decrypted with ca.passphrase`, 'ca.passphrase', error);
    }
    throw invalid(
      `${what}: ca.key is not a PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC)${typeof code === 'string' ? ` (${code})` : ''}`,
      'ca.key',
      error,
    );
  }
  const signer = signerFor(key, what);
  let matches = false;
  try {
    matches = cert.checkPrivateKey(key);
  } catch {
    // A key of another type than the certificate's: not a match.
  }
  if (!matches) throw invalid(`${what}: ca.key is not the key of ca.cert (${subjectOf(cert)})`, 'ca.key');
  return {
    subject: fields.subject,
    keyIdentifier: fields.subjectKeyIdentifier ?? keyIdentifier(cert.publicKey),
    signer,
  };
}

/** `SEQUENCE { tbs, algorithm, BIT STRING signature }`, the shape of both certificates and CRLs. */
function signed(tbs: Buffer, signer: Signer): Buffer {
  return sequence(tbs, signer.algorithm, bitString(sign(signer.hash, tbs, signer.key)));
}

// ---------------------------------------------------------------------------------------------------------------
// Certificates.

/** A Name of one attribute, the common name, as UTF8String. */
const nameOf = (commonName: string) => sequence(set(sequence(oid(OID.commonName), utf8String(commonName))));

function newKeyPair(keyType: 'ec' | 'rsa', rsaBits: number): { publicKey: KeyObject; privateKey: KeyObject } {
  return keyType === 'ec'
    ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
    : generateKeyPairSync('rsa', { modulusLength: rsaBits });
}

interface EndEntity {
  readonly ca: LoadedCa;
  readonly serial: bigint;
  readonly commonName: string;
  readonly validityDays: number;
  readonly keyType: 'ec' | 'rsa';
  readonly now: number;
  /** The extendedKeyUsage purpose. */
  readonly purpose: string;
  /** Further extensions, after extendedKeyUsage. */
  readonly extensions: readonly Buffer[];
}

/**
 * A v3 end-entity certificate with a fresh key, signed by the CA: basicConstraints CA:FALSE and keyUsage
 * digitalSignature (+ keyEncipherment for RSA), both critical, extendedKeyUsage, the extensions given,
 * subjectKeyIdentifier and authorityKeyIdentifier.
 */
function issueEndEntity(entity: EndEntity): IssuedClientCertificate {
  const { ca, keyType, now } = entity;
  const { publicKey, privateKey } = newKeyPair(keyType, 2048);
  const notBefore = wholeSeconds(now - CLOCK_SKEW_MS);
  const notAfter = wholeSeconds(now + entity.validityDays * DAY_MS);
  const usage =
    keyType === 'rsa' ? [KEY_USAGE.digitalSignature, KEY_USAGE.keyEncipherment] : [KEY_USAGE.digitalSignature];
  const tbs = sequence(
    explicit(0, integer(2n)), // v3
    integer(entity.serial),
    ca.signer.algorithm,
    ca.subject,
    sequence(time(notBefore), time(notAfter)),
    nameOf(entity.commonName),
    publicKey.export({ type: 'spki', format: 'der' }),
    explicit(
      3,
      sequence(
        // cA FALSE is the DEFAULT, which DER leaves out: an empty sequence.
        extension(OID.basicConstraints, true, sequence()),
        extension(OID.keyUsage, true, namedBits(usage)),
        extension(OID.extKeyUsage, false, sequence(oid(entity.purpose))),
        ...entity.extensions,
        extension(OID.subjectKeyIdentifier, false, octetString(keyIdentifier(publicKey))),
        extension(OID.authorityKeyIdentifier, false, sequence(implicitOctets(0, ca.keyIdentifier))),
      ),
    ),
  );
  return {
    cert: pem('CERTIFICATE', signed(tbs, ca.signer)),
    key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    serialNumber: hex(entity.serial),
    notAfter,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// The API.

/**
 * Issues an X.509 v3 client certificate for `commonName` with a fresh key, signed by the CA: for brokers that map
 * the certificate's common name to a user. The issuer is the CA's subject as encoded; the extensions are
 * basicConstraints CA:FALSE and keyUsage digitalSignature (+ keyEncipherment for RSA), both critical,
 * extendedKeyUsage clientAuth, subjectKeyIdentifier and authorityKeyIdentifier. The signature is
 * sha256WithRSAEncryption for an RSA CA, ecdsa-with-SHA256 for P-256 and ecdsa-with-SHA384 for P-384.
 *
 * notBefore is five minutes ago, so a broker whose clock is a little behind accepts the certificate at once. A
 * certificate is not clipped to its CA's validity, but no broker accepts it after the CA expired.
 *
 * @throws TypeError or RangeError for a malformed option (an empty common name, one with control characters,
 *   `validityDays` out of range, an unsupported CA key type); `EdgeKitError('invalid-configuration')` with
 *   `details.option` when the CA cannot issue: its certificate does not parse, is no CA or not valid now, its key
 *   does not parse, needs another passphrase or does not match the certificate. No message contains key material.
 *
 * @example
 * ```ts
 * const ca = { cert: readFileSync('ca.pem', 'utf8'), key: readFileSync('ca.key', 'utf8') };
 * const issued = issueClientCertificate({ ca, commonName: 'gw-1/filter', validityDays: 90 });
 * writeFileSync('filter.pem', issued.cert);
 * writeFileSync('filter.key', issued.key, { mode: 0o600 });
 * // Keep issued.serialNumber: revoking the certificate names it.
 * ```
 */
export function issueClientCertificate(options: IssueClientCertificateOptions): IssuedClientCertificate {
  const what = 'issueClientCertificate';
  if (typeof options !== 'object' || options === null) throw new TypeError(`${what}: options must be an object`);
  const commonName = checkCommonName(options.commonName, what);
  const validityDays = checkDays(options.validityDays, 'validityDays', 365, what);
  const keyType = checkKeyType(options.keyType, what);
  const serial =
    options.serialNumber === undefined ? randomSerial() : checkCount(options.serialNumber, 'serialNumber', 1n, what);
  const now = Date.now();
  const ca = loadCa(options.ca, 'certificates', what, now);
  return issueEndEntity({
    ca,
    serial,
    commonName,
    validityDays,
    keyType,
    now,
    purpose: OID.clientAuth,
    extensions: [],
  });
}

/**
 * Creates a self-signed X.509 v3 root CA with a fresh key, for a hub that has no CA of its own: give it to
 * {@link issueServerCertificate}, {@link issueClientCertificate} and {@link createRevocationList}, and its `cert` to
 * every peer that is to trust what it issues. The subject (and issuer) is the common name alone; the extensions are
 * basicConstraints CA:TRUE with pathLenConstraint 0 (it signs end-entity certificates, no intermediate CAs) and
 * keyUsage keyCertSign, cRLSign, both critical, and subjectKeyIdentifier, with an authorityKeyIdentifier naming the
 * same key. The signature is ecdsa-with-SHA256 for the default P-256 key, sha256WithRSAEncryption for RSA 3072.
 *
 * notBefore is five minutes ago, as for {@link issueClientCertificate}. The key is returned unencrypted: keep it
 * where only the issuing process can read it, or encrypt it when storing it (`createPrivateKey(key).export({ ...,
 * cipher, passphrase })`) and pass the passphrase with it.
 *
 * @throws TypeError or RangeError for a malformed option: an empty common name or one with control characters,
 *   `validityDays` not a whole number from 1 to 36500, a `keyType` other than `ec` or `rsa`.
 *
 * @example
 * ```ts
 * const ca = createCertificateAuthority({ commonName: 'plant-7 hub CA' });
 * writeFileSync('ca.pem', ca.cert);
 * writeFileSync('ca.key', ca.key, { mode: 0o600 });
 * const server = issueServerCertificate({ ca, dnsNames: ['hub.local', 'localhost'], ipAddresses: ['127.0.0.1'] });
 * ```
 */
export function createCertificateAuthority(
  options: CreateCertificateAuthorityOptions = {},
): CreatedCertificateAuthority {
  const what = 'createCertificateAuthority';
  if (typeof options !== 'object' || options === null) throw new TypeError(`${what}: options must be an object`);
  const commonName = options.commonName === undefined ? 'edgekit hub CA' : checkCommonName(options.commonName, what);
  const validityDays = checkDays(options.validityDays, 'validityDays', 3650, what, 36500);
  const keyType = checkKeyType(options.keyType, what);
  const now = Date.now();

  // RSA 3072 rather than 2048: a CA outlives what it signs, and NIST retires 2048-bit RSA after 2030.
  const { publicKey, privateKey } = newKeyPair(keyType, 3072);
  const signer = signerFor(privateKey, what);
  const name = nameOf(commonName);
  const id = keyIdentifier(publicKey);
  const serial = randomSerial();
  const notBefore = wholeSeconds(now - CLOCK_SKEW_MS);
  const notAfter = wholeSeconds(now + validityDays * DAY_MS);
  const tbs = sequence(
    explicit(0, integer(2n)), // v3
    integer(serial),
    signer.algorithm,
    name, // issuer: self-signed
    sequence(time(notBefore), time(notAfter)),
    name,
    publicKey.export({ type: 'spki', format: 'der' }),
    explicit(
      3,
      sequence(
        extension(OID.basicConstraints, true, sequence(TRUE, integer(0n))),
        extension(OID.keyUsage, true, namedBits([KEY_USAGE.keyCertSign, KEY_USAGE.cRLSign])),
        extension(OID.subjectKeyIdentifier, false, octetString(id)),
        extension(OID.authorityKeyIdentifier, false, sequence(implicitOctets(0, id))),
      ),
    ),
  );
  return {
    cert: pem('CERTIFICATE', signed(tbs, signer)),
    key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    serialNumber: hex(serial),
    notAfter,
  };
}

/**
 * Issues an X.509 v3 TLS server certificate with a fresh key, signed by the CA (one from
 * {@link createCertificateAuthority} or the user's own): for a hub's or broker's TLS listener. Clients check the name
 * they connect by against the subjectAltName, which lists `dnsNames` (dNSName) and then `ipAddresses` (iPAddress);
 * at least one is needed. The other extensions are as {@link issueClientCertificate}'s, with extendedKeyUsage
 * serverAuth: basicConstraints CA:FALSE, keyUsage digitalSignature (+ keyEncipherment for RSA), subjectKeyIdentifier
 * and authorityKeyIdentifier. notBefore is five minutes ago.
 *
 * @throws TypeError or RangeError for a malformed option: no DNS name or IP address, a DNS name that is not one (or
 *   is an IP address), an address `net.isIP` refuses or with a zone index, a name or address listed twice, a bad
 *   common name, `validityDays` out of range, an unsupported CA key type; `EdgeKitError('invalid-configuration')`
 *   as {@link issueClientCertificate} when the CA cannot issue.
 *
 * @example
 * ```ts
 * const ca = createCertificateAuthority();
 * const server = issueServerCertificate({ ca, dnsNames: ['localhost'], ipAddresses: ['127.0.0.1', '::1'] });
 * tls.createServer({ cert: server.cert, key: server.key }, onConnection).listen(8883);
 * // A client: tls.connect({ port: 8883, host: 'localhost', ca: ca.cert })
 * ```
 */
export function issueServerCertificate(options: IssueServerCertificateOptions): IssuedClientCertificate {
  const what = 'issueServerCertificate';
  if (typeof options !== 'object' || options === null) throw new TypeError(`${what}: options must be an object`);
  const dnsNames = checkList(options.dnsNames, 'dnsNames', what, checkDnsName, (name) => name.toLowerCase());
  const ipAddresses = checkList(
    options.ipAddresses,
    'ipAddresses',
    what,
    (entry, at) => {
      const octets = ipOctets(entry, at, what);
      return { text: String(entry), octets };
    },
    (address) => address.octets.toString('hex'),
  );
  const firstName = dnsNames[0] ?? ipAddresses[0]?.text;
  if (firstName === undefined) {
    throw new RangeError(`${what}: give at least one of dnsNames and ipAddresses, the names clients connect by`);
  }
  const commonName = options.commonName === undefined ? firstName : checkCommonName(options.commonName, what);
  const validityDays = checkDays(options.validityDays, 'validityDays', 365, what);
  const keyType = checkKeyType(options.keyType, what);
  const now = Date.now();
  const ca = loadCa(options.ca, 'certificates', what, now);
  const alternativeNames = sequence(
    ...dnsNames.map((name) => implicitOctets(2, Buffer.from(name, 'ascii'))),
    ...ipAddresses.map((address) => implicitOctets(7, address.octets)),
  );
  return issueEndEntity({
    ca,
    serial: randomSerial(),
    commonName,
    validityDays,
    keyType,
    now,
    purpose: OID.serverAuth,
    // Not critical: the subject is not empty (RFC 5280 §4.2.1.6).
    extensions: [extension(OID.subjectAltName, false, alternativeNames)],
  });
}

/**
 * Creates an X.509 v2 certificate revocation list signed by the CA, as PEM: what Mosquitto's `crlfile` and OpenSSL's
 * `-CRLfile` read. It carries the authorityKeyIdentifier and cRLNumber extensions; an empty `revoked` gives a list
 * without entries. Replace the broker's file with each new list well before `nextUpdate`: brokers that check
 * revocation refuse every client of the CA once it has passed. Mosquitto reads its `crlfile` at start and on SIGHUP;
 * RabbitMQ, with a `crl_cache` of `ssl_crl_hash_dir`, at each handshake. Either checks a certificate only when a
 * connection is made: a connection made before its revocation stays open.
 *
 * @throws TypeError or RangeError for a malformed option (a serial that is not positive hex of at most 20 bytes, a
 *   serial listed twice, an invalid date); `EdgeKitError('invalid-configuration')` as {@link issueClientCertificate}
 *   when the CA cannot sign lists (also when its keyUsage lacks cRLSign).
 *
 * @example
 * ```ts
 * const crl = createRevocationList({
 *   ca,
 *   revoked: [{ serialNumber: old.serialNumber, revokedAt: new Date() }],
 * });
 * writeFileSync('/etc/mosquitto/crl.pem', crl); // mosquitto.conf: crlfile /etc/mosquitto/crl.pem
 * ```
 */
export function createRevocationList(options: CreateRevocationListOptions): string {
  const what = 'createRevocationList';
  if (typeof options !== 'object' || options === null) throw new TypeError(`${what}: options must be an object`);
  if (!Array.isArray(options.revoked)) throw new TypeError(`${what}: revoked must be an array`);
  const now = Date.now();
  const thisUpdate =
    options.thisUpdate === undefined
      ? wholeSeconds(now - CLOCK_SKEW_MS)
      : checkDate(options.thisUpdate, 'thisUpdate', what);
  const nextUpdate = new Date(
    thisUpdate.getTime() + checkDays(options.nextUpdateDays, 'nextUpdateDays', 30, what) * DAY_MS,
  );
  checkDate(nextUpdate, 'thisUpdate + nextUpdateDays', what);
  const crlNumber =
    options.crlNumber === undefined
      ? BigInt(Math.max(0, thisUpdate.getTime()))
      : checkCount(options.crlNumber, 'crlNumber', 0n, what);
  const seen = new Set<bigint>();
  const entries = options.revoked.map((entry: RevokedCertificate, index) => {
    const at = `revoked[${index}]`;
    if (typeof entry !== 'object' || entry === null) throw new TypeError(`${what}: ${at} must be an object`);
    if (typeof entry.serialNumber !== 'string') throw new TypeError(`${what}: ${at}.serialNumber must be a hex string`);
    if (!/^[0-9A-Fa-f]{1,64}$/.test(entry.serialNumber)) {
      throw new RangeError(`${what}: ${at}.serialNumber ${JSON.stringify(entry.serialNumber.slice(0, 80))} is not hex`);
    }
    const serial = checkCount(BigInt(`0x${entry.serialNumber}`), `${at}.serialNumber`, 1n, what);
    if (seen.has(serial)) throw new RangeError(`${what}: serial number ${hex(serial)} is listed twice`);
    seen.add(serial);
    return sequence(integer(serial), time(checkDate(entry.revokedAt, `${at}.revokedAt`, what)));
  });
  const ca = loadCa(options.ca, 'lists', what, now);
  const tbs = sequence(
    integer(1n), // v2
    ca.signer.algorithm,
    ca.subject,
    time(thisUpdate),
    time(nextUpdate),
    // RFC 5280 §5.1.2.6: with nothing revoked, the list is absent rather than empty.
    ...(entries.length === 0 ? [] : [sequence(...entries)]),
    explicit(
      0,
      sequence(
        extension(OID.authorityKeyIdentifier, false, sequence(implicitOctets(0, ca.keyIdentifier))),
        extension(OID.crlNumber, false, integer(crlNumber)),
      ),
    ),
  );
  return pem('X509 CRL', signed(tbs, ca.signer));
}
