/**
 * Throw-away certificate authorities made with the `openssl` command line, an implementation independent of the one
 * under test: keys of several types, written in the forms users have (PKCS#8, SEC1, PKCS#1, encrypted), with the
 * extensions a test asks for; and a way to run `openssl` and read what it says.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export interface OpensslResult {
  readonly ok: boolean;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `openssl` with `args` in `cwd`; never throws on a non-zero exit (tests assert on failures too). */
export function openssl(args: readonly string[], cwd: string): OpensslResult {
  const result = spawnSync('openssl', args, { cwd, encoding: 'utf8' });
  if (result.error) throw result.error;
  return { ok: result.status === 0, stdout: result.stdout, stderr: result.stderr };
}

/** Runs `openssl` and throws with its stderr unless it succeeded; returns stdout. */
export function opensslOk(args: readonly string[], cwd: string): string {
  const result = openssl(args, cwd);
  if (!result.ok) throw new Error(`openssl ${args.join(' ')} failed: ${result.stderr}`);
  return result.stdout;
}

export type CaKeyType = 'ec' | 'ec-p384' | 'ec-p521' | 'rsa' | 'rsa-1024' | 'ed25519';
/** How the CA's key file is written; the encrypted forms use {@link MakeCaOptions.passphrase}. */
export type CaKeyForm = 'pkcs8' | 'sec1' | 'pkcs1' | 'encrypted-pkcs8' | 'encrypted-pkcs1';

export interface MakeCaOptions {
  /** Default `ec` (P-256). */
  readonly keyType?: CaKeyType;
  /** Default `pkcs8`. */
  readonly keyForm?: CaKeyForm;
  /** For the encrypted forms; default `ca passphrase`. */
  readonly passphrase?: string;
  /** An openssl `-subj`, UTF-8; default `/CN=<name>`. */
  readonly subject?: string;
  /**
   * Extension lines of the certificate (openssl config syntax); default a CA as RFC 5280 wants it:
   * basicConstraints CA:TRUE and keyUsage keyCertSign, cRLSign, both critical, and a subjectKeyIdentifier.
   */
  readonly extensions?: readonly string[];
  /** Days of validity; default 2. */
  readonly days?: number;
}

export interface OpensslCa {
  readonly certFile: string;
  readonly keyFile: string;
  /** PEM texts of the certificate and of the key in the form asked for. */
  readonly cert: string;
  readonly key: string;
  readonly passphrase: string | undefined;
}

export const STRICT_CA_EXTENSIONS = [
  'basicConstraints = critical, CA:TRUE',
  'keyUsage = critical, keyCertSign, cRLSign',
  'subjectKeyIdentifier = hash',
];

const GENPKEY: Record<CaKeyType, readonly string[]> = {
  ec: ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-256'],
  'ec-p384': ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-384'],
  'ec-p521': ['-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:P-521'],
  rsa: ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048'],
  'rsa-1024': ['-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:1024'],
  ed25519: ['-algorithm', 'ED25519'],
};

/** Makes a CA named `name` in `dir` (files `<name>.pem`, `<name>.key`). */
export function makeCa(dir: string, name: string, options: MakeCaOptions = {}): OpensslCa {
  const keyType = options.keyType ?? 'ec';
  const keyForm = options.keyForm ?? 'pkcs8';
  const passphrase = keyForm.startsWith('encrypted') ? (options.passphrase ?? 'ca passphrase') : undefined;
  const plainKey = `${name}.plain.key`;
  const keyFile = path.join(dir, `${name}.key`);
  const certFile = path.join(dir, `${name}.pem`);
  const config = `${name}.cnf`;
  writeFileSync(
    path.join(dir, config),
    [
      '[req]',
      'distinguished_name = dn',
      'x509_extensions = ext',
      '[dn]',
      '[ext]',
      ...(options.extensions ?? STRICT_CA_EXTENSIONS),
      '',
    ].join('\n'),
  );
  opensslOk(['genpkey', ...GENPKEY[keyType], '-out', plainKey], dir);
  opensslOk(
    [
      'req',
      '-x509',
      '-new',
      '-utf8',
      '-key',
      plainKey,
      '-config',
      config,
      '-subj',
      options.subject ?? `/CN=${name}`,
      '-days',
      String(options.days ?? 2),
      '-out',
      certFile,
    ],
    dir,
  );
  const pass = ['-passout', `pass:${passphrase}`];
  const convert: Record<CaKeyForm, readonly string[]> = {
    pkcs8: ['pkey', '-in', plainKey],
    sec1: ['ec', '-in', plainKey],
    pkcs1: ['rsa', '-traditional', '-in', plainKey],
    'encrypted-pkcs8': ['pkcs8', '-topk8', '-v2', 'aes-256-cbc', '-in', plainKey, ...pass],
    'encrypted-pkcs1': ['rsa', '-traditional', '-aes256', '-in', plainKey, ...pass],
  };
  opensslOk([...(convert[keyForm] ?? []), '-out', keyFile], dir);
  rmSync(path.join(dir, plainKey));
  return {
    certFile,
    keyFile,
    cert: readFileSync(certFile, 'utf8'),
    key: readFileSync(keyFile, 'utf8'),
    passphrase,
  };
}

/** A fresh temporary folder and its removal. */
export function tempFolder(prefix: string): { readonly dir: string; remove(): void } {
  const dir = mkdtempSync(path.join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}
