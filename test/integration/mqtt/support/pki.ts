/**
 * A throw-away PKI for TLS tests, made with the `openssl` command line: a CA, a server certificate for 127.0.0.1 and
 * a client certificate, all signed by the CA and valid for a day.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export interface TestPki {
  readonly dir: string;
  readonly caFile: string;
  readonly serverCertFile: string;
  readonly serverKeyFile: string;
  /** PEM text of the CA certificate, the client certificate and its key. */
  readonly ca: string;
  readonly clientCert: string;
  readonly clientKey: string;
  /** A CA that signed nothing here: trusting only it must fail. */
  readonly otherCa: string;
  remove(): void;
}

function openssl(args: readonly string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: 'pipe' });
  } catch (error) {
    const stderr = (error as { stderr?: Buffer }).stderr?.toString() ?? '';
    throw new Error(`openssl ${args.join(' ')} failed: ${stderr || String(error)}`);
  }
}

const KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

function makeCa(dir: string, name: string): void {
  openssl(
    ['req', '-x509', ...KEY, '-keyout', `${name}.key`, '-out', `${name}.pem`, '-days', '1', '-subj', `/CN=${name}`],
    dir,
  );
}

function makeLeaf(dir: string, name: string, subject: string, extensions: string): void {
  writeFileSync(path.join(dir, `${name}.ext`), `${extensions}\n`);
  openssl(['req', ...KEY, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject], dir);
  openssl(
    [
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      `${name}.pem`,
      '-days',
      '1',
      '-extfile',
      `${name}.ext`,
    ],
    dir,
  );
}

/** Generates the PKI in a fresh temp folder. */
export function createTestPki(): TestPki {
  const dir = mkdtempSync(path.join(tmpdir(), 'edgekit-pki-'));
  makeCa(dir, 'ca');
  makeCa(dir, 'other-ca');
  makeLeaf(dir, 'server', '/CN=127.0.0.1', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth');
  makeLeaf(dir, 'client', '/CN=edgekit-test-client', 'extendedKeyUsage=clientAuth');
  const read = (file: string) => readFileSync(path.join(dir, file), 'utf8');
  return {
    dir,
    caFile: path.join(dir, 'ca.pem'),
    serverCertFile: path.join(dir, 'server.pem'),
    serverKeyFile: path.join(dir, 'server.key'),
    ca: read('ca.pem'),
    clientCert: read('client.pem'),
    clientKey: read('client.key'),
    otherCa: read('other-ca.pem'),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/**
 * Issues a client certificate for `commonName` (a `/` in it is escaped for openssl) signed by the PKI's CA: what a
 * broker with `use_identity_as_username` takes as the user name. Returns its PEM text and key.
 */
export function issueClientCertificate(pki: TestPki, commonName: string): { cert: string; key: string } {
  const name = `client-${commonName.replace(/[^A-Za-z0-9-]/g, '_')}`;
  makeLeaf(pki.dir, name, `/CN=${commonName.replace(/\//g, '\\/')}`, 'extendedKeyUsage=clientAuth');
  const read = (file: string) => readFileSync(path.join(pki.dir, file), 'utf8');
  return { cert: read(`${name}.pem`), key: read(`${name}.key`) };
}
