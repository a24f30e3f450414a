/** Pieces the hub tests share: a test CA with a server certificate for localhost, and polling with a deadline. */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { createCertificateAuthority, issueServerCertificate } from '../../src/service/certificates.js';

/** A CA, a server certificate for localhost and 127.0.0.1 signed by it, and the CA written to `folder/ca.pem`. */
export function testTls(folder: string, commonName = 'edgekit hub test CA') {
  const ca = createCertificateAuthority({ commonName });
  const server = issueServerCertificate({ ca, dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  const caFile = path.join(folder, 'ca.pem');
  writeFileSync(caFile, ca.cert);
  return { ca, server, caFile };
}

/** Polls `read` until `done` holds of its value, or fails after `ms` saying what it last read. */
export async function until<T>(
  read: () => Promise<T>,
  done: (value: T) => boolean,
  what: string,
  ms = 10_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error(`${what}: still ${JSON.stringify(value)} after ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
