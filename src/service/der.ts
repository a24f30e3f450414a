/**
 * A minimal DER writer and reader for the X.509 structures src/service/certificates.ts builds: `node:crypto`
 * generates keys and signs, but builds no certificates or revocation lists. Only the types and the few parts of a CA
 * certificate used there.
 */
import { createHash, type KeyObject } from 'node:crypto';

// ---------------------------------------------------------------------------------------------------------------
// DER writer: only the types certificates and CRLs use here.

export function tlv(tag: number, ...content: readonly Uint8Array[]): Buffer {
  const body = Buffer.concat(content);
  let length: Buffer;
  if (body.length < 0x80) {
    length = Buffer.from([body.length]);
  } else {
    const octets: number[] = [];
    for (let n = body.length; n > 0; n = Math.floor(n / 256)) octets.unshift(n % 256);
    length = Buffer.from([0x80 | octets.length, ...octets]);
  }
  return Buffer.concat([Buffer.from([tag]), length, body]);
}

export const sequence = (...items: readonly Uint8Array[]) => tlv(0x30, ...items);
export const set = (...items: readonly Uint8Array[]) => tlv(0x31, ...items);
export const octetString = (bytes: Uint8Array) => tlv(0x04, bytes);
export const utf8String = (text: string) => tlv(0x0c, Buffer.from(text, 'utf8'));
export const TRUE = tlv(0x01, Buffer.from([0xff]));
export const NULL = tlv(0x05);
/** `[n] EXPLICIT`: a constructed context tag around a whole element. */
export const explicit = (n: number, element: Uint8Array) => tlv(0xa0 | n, element);
/**
 * `[n] IMPLICIT OCTET STRING`: a primitive context tag in place of the octet string's own. Also `[n] IMPLICIT
 * IA5String`, whose content octets are the ASCII text.
 */
export const implicitOctets = (n: number, bytes: Uint8Array) => tlv(0x80 | n, bytes);

/** The minimal magnitude octets of a non-negative integer (zero is one zero octet). */
export function magnitude(value: bigint): Buffer {
  const hex = value.toString(16);
  return Buffer.from(hex.length % 2 === 0 ? hex : `0${hex}`, 'hex');
}

/**
 * INTEGER, two's complement and minimal. Only non-negative values occur here (versions, serial and CRL numbers), so
 * two's complement just means a leading zero octet when the top bit of the magnitude is set.
 */
export function integer(value: bigint): Buffer {
  if (value < 0n) throw new RangeError('internal: negative INTEGER');
  const octets = magnitude(value);
  return tlv(0x02, (octets[0] ?? 0) & 0x80 ? Buffer.concat([Buffer.from([0]), octets]) : octets);
}

export function oid(dotted: string): Buffer {
  const arcs = dotted.split('.').map(BigInt);
  const [first = 0n, second = 0n, ...rest] = arcs;
  const octets: number[] = [];
  for (const arc of [first * 40n + second, ...rest]) {
    // Base 128, most significant group first, the high bit set on every octet but the last.
    const groups: number[] = [Number(arc & 0x7fn)];
    for (let v = arc >> 7n; v > 0n; v >>= 7n) groups.unshift(Number(v & 0x7fn) | 0x80);
    octets.push(...groups);
  }
  return tlv(0x06, Buffer.from(octets));
}

/** BIT STRING of whole octets. */
export const bitString = (bytes: Uint8Array) => tlv(0x03, Buffer.from([0]), bytes);

/**
 * A named-bit BIT STRING (keyUsage) from bit numbers; DER drops trailing zero bits, so the unused-bit count says
 * where the last set bit is.
 */
export function namedBits(bits: readonly number[]): Buffer {
  const last = Math.max(...bits);
  const octets = Buffer.alloc((last >> 3) + 1);
  for (const bit of bits) octets[bit >> 3] = (octets[bit >> 3] ?? 0) | (0x80 >> (bit & 7));
  return tlv(0x03, Buffer.from([7 - (last & 7)]), octets);
}

/** RFC 5280 §4.1.2.5: UTCTime for 1950–2049, GeneralizedTime otherwise; whole seconds, in UTC. */
export function time(date: Date): Buffer {
  const year = date.getUTCFullYear();
  const two = (n: number) => String(n).padStart(2, '0');
  const rest = `${two(date.getUTCMonth() + 1)}${two(date.getUTCDate())}${two(date.getUTCHours())}${two(
    date.getUTCMinutes(),
  )}${two(date.getUTCSeconds())}Z`;
  if (year >= 1950 && year < 2050) return tlv(0x17, Buffer.from(`${two(year % 100)}${rest}`, 'ascii'));
  return tlv(0x18, Buffer.from(`${String(year).padStart(4, '0')}${rest}`, 'ascii'));
}

export function extension(id: string, critical: boolean, value: Uint8Array): Buffer {
  return sequence(oid(id), ...(critical ? [TRUE] : []), octetString(value));
}

export function pem(label: string, der: Uint8Array): string {
  const lines =
    Buffer.from(der)
      .toString('base64')
      .match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

export const OID = {
  commonName: '2.5.4.3',
  subjectKeyIdentifier: '2.5.29.14',
  keyUsage: '2.5.29.15',
  basicConstraints: '2.5.29.19',
  crlNumber: '2.5.29.20',
  subjectAltName: '2.5.29.17',
  authorityKeyIdentifier: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  sha256WithRSAEncryption: '1.2.840.113549.1.1.11',
  ecdsaWithSHA256: '1.2.840.10045.4.3.2',
  ecdsaWithSHA384: '1.2.840.10045.4.3.3',
} as const;

/** keyUsage bit numbers (RFC 5280 §4.2.1.3). */
export const KEY_USAGE = { digitalSignature: 0, keyEncipherment: 2, keyCertSign: 5, cRLSign: 6 } as const;

// ---------------------------------------------------------------------------------------------------------------
// DER reader: just enough to walk a certificate Node has already parsed, and a SubjectPublicKeyInfo.

export interface Element {
  readonly tag: number;
  /** Offsets into the DER: the tag, the first content octet, one past the last. */
  readonly start: number;
  readonly body: number;
  readonly end: number;
}

export class MalformedDer extends Error {}

export function octetAt(der: Uint8Array, at: number): number {
  const octet = der[at];
  if (octet === undefined) throw new MalformedDer(`truncated at offset ${at}`);
  return octet;
}

export function readElement(der: Uint8Array, at: number, limit: number): Element {
  const tag = octetAt(der, at);
  if ((tag & 0x1f) === 0x1f) throw new MalformedDer(`multi-octet tag at offset ${at}`);
  let length = octetAt(der, at + 1);
  let body = at + 2;
  if (length & 0x80) {
    const count = length & 0x7f;
    if (count === 0 || count > 4) throw new MalformedDer(`unsupported length at offset ${at}`);
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + octetAt(der, body++);
  }
  if (body + length > limit) throw new MalformedDer(`element at offset ${at} overruns its parent`);
  return { tag, start: at, body, end: body + length };
}

export function childrenOf(der: Uint8Array, parent: Element): Element[] {
  const children: Element[] = [];
  for (let at = parent.body; at < parent.end; ) {
    const child = readElement(der, at, parent.end);
    children.push(child);
    at = child.end;
  }
  return children;
}

export function child(der: Uint8Array, parent: Element, index: number, tag: number): Element {
  const found = childrenOf(der, parent)[index];
  if (found?.tag !== tag) throw new MalformedDer(`expected tag 0x${tag.toString(16)} at position ${index}`);
  return found;
}

export const contents = (der: Uint8Array, element: Element) => Buffer.from(der.subarray(element.body, element.end));

/** RFC 5280 §4.2.1.2 method 1: the SHA-1 of the subjectPublicKey bits (without tag, length and unused-bit octet). */
export function keyIdentifier(publicKey: KeyObject): Buffer {
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const bits = child(spki, readElement(spki, 0, spki.length), 1, 0x03);
  return createHash('sha1')
    .update(spki.subarray(bits.body + 1, bits.end))
    .digest();
}

/** What we need of the CA certificate that `X509Certificate` does not give. */
export interface CaFields {
  /** Its subject Name, DER, as encoded: the issuer of everything it signs. */
  readonly subject: Buffer;
  readonly subjectKeyIdentifier: Buffer | undefined;
  /** keyUsage bits set, or undefined when it has no keyUsage extension (any use allowed). */
  readonly keyUsage: ReadonlySet<number> | undefined;
}

export function readCaFields(der: Uint8Array): CaFields {
  const certificate = readElement(der, 0, der.length);
  const tbs = child(der, certificate, 0, 0x30);
  const fields = childrenOf(der, tbs);
  // version [0] is absent in v1 certificates; then serial, signature, issuer, validity, subject, subjectPublicKeyInfo.
  const first = fields[0]?.tag === 0xa0 ? 1 : 0;
  const subject = fields[first + 4];
  if (subject?.tag !== 0x30) throw new MalformedDer('no subject');
  let subjectKeyIdentifier: Buffer | undefined;
  let keyUsage: Set<number> | undefined;
  const wrapped = fields.find((field) => field.tag === 0xa3);
  const extensions = wrapped === undefined ? [] : childrenOf(der, child(der, wrapped, 0, 0x30));
  for (const ext of extensions) {
    const parts = childrenOf(der, ext);
    const id = parts[0];
    const value = parts[parts.length - 1];
    if (id?.tag !== 0x06 || value?.tag !== 0x04) throw new MalformedDer('malformed extension');
    const idBytes = der.subarray(id.start, id.end);
    if (oid(OID.subjectKeyIdentifier).equals(idBytes)) {
      subjectKeyIdentifier = contents(der, readElement(der, value.body, value.end));
    } else if (oid(OID.keyUsage).equals(idBytes)) {
      const bits = contents(der, readElement(der, value.body, value.end)).subarray(1);
      keyUsage = new Set();
      for (let bit = 0; bit < bits.length * 8; bit++) {
        if (((bits[bit >> 3] ?? 0) >> (7 - (bit & 7))) & 1) keyUsage.add(bit);
      }
    }
  }
  return { subject: Buffer.from(der.subarray(subject.start, subject.end)), subjectKeyIdentifier, keyUsage };
}
