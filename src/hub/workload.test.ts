import { createHmac } from 'node:crypto';
import { existsSync } from 'node:fs';
import { link, mkdtemp, rename, rm, stat, writeFile } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { connect, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IotEdgeAuthenticationProvider } from 'azure-iot-device';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { isEdgeKitError } from '../errors.js';
import { verifySasToken } from './sas.js';
import { startWorkloadApi, type WorkloadApi, type WorkloadApiOptions } from './workload.js';

const KEY = Buffer.from('the key of modA, thirty-two byte').toString('base64');
const TRUST_BUNDLE = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
const SIGN = '/modules/modA/genid/gen1/sign?api-version=2018-06-28';

interface Answer {
  status: number;
  contentType: string | undefined;
  body: unknown;
}

/** One HTTP request over the unix socket; the body is sent in one write. */
function call(
  socketPath: string,
  method: string,
  path: string,
  body?: string | Buffer,
  headers: Record<string, string> = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const options = { socketPath, method, path, headers: { 'content-type': 'application/json', ...headers } };
    const req = request(options, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode!, contentType: res.headers['content-type'], body: JSON.parse(text) });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

function signBody(data: string, fields: Record<string, unknown> = {}): string {
  return JSON.stringify({
    keyId: 'primary',
    algo: 'HMACSHA256',
    data: Buffer.from(data).toString('base64'),
    ...fields,
  });
}

let dir: string;
let socketPath: string;
let api: WorkloadApi | undefined;

async function start(options: Partial<WorkloadApiOptions> = {}): Promise<WorkloadApi> {
  api = await startWorkloadApi({
    socketPath,
    keyOf: (moduleId) => (moduleId === 'modA' ? KEY : undefined),
    trustBundle: TRUST_BUNDLE,
    generationId: 'gen1',
    ...options,
  });
  return api;
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'edgekit-workload-'));
  socketPath = join(dir, 'workload.sock');
});

afterEach(async () => {
  await api?.close();
  api = undefined;
  await rm(dir, { recursive: true, force: true });
});

describe('sign', () => {
  test('answers the HMAC-SHA256 of the data under the module key', async () => {
    await start();
    // What the Azure SDK asks to have signed: the url-encoded sr, a newline, the expiry.
    const data = 'myhub.azure-devices.net%2Fdevices%2Fdev1%2Fmodules%2FmodA\n1796303939';
    const answer = await call(socketPath, 'POST', SIGN, signBody(data));
    const digest = createHmac('sha256', Buffer.from(KEY, 'base64')).update(data).digest('base64');
    expect(answer).toStrictEqual({ status: 200, contentType: 'application/json', body: { digest } });
  });

  test('signs bytes, not text', async () => {
    await start();
    const bytes = Buffer.from([0xff, 0x00, 0xfe, 0x80]);
    const body = JSON.stringify({ keyId: 'primary', algo: 'HMACSHA256', data: bytes.toString('base64') });
    const answer = await call(socketPath, 'POST', '/modules/modA/genid/gen1/sign', body);
    const digest = createHmac('sha256', Buffer.from(KEY, 'base64')).update(bytes).digest('base64');
    expect(answer.body).toStrictEqual({ digest });
  });

  test('accepts any generation id when none is configured, and a percent-encoded module id', async () => {
    await start({ generationId: undefined, keyOf: (m) => (m === 'mod:A' ? KEY : undefined) });
    const answer = await call(socketPath, 'POST', '/modules/mod%3AA/genid/whatever/sign', signBody('x'));
    expect(answer.status).toBe(200);
  });

  test.each([
    ['an unknown module', 'POST', '/modules/modB/genid/gen1/sign'],
    ['another generation id', 'POST', '/modules/modA/genid/gen0/sign'],
    ['GET on the sign path', 'GET', '/modules/modA/genid/gen1/sign'],
    ['an extra level', 'POST', '/modules/modA/genid/gen1/sign/x'],
    ['an empty module id', 'POST', '/modules//genid/gen1/sign'],
    ['a bad escape', 'POST', '/modules/%zz/genid/gen1/sign'],
    // Never a key looked up (or a credential file read) for a name that is no module id, such as "../x".
    ['a module id with a slash', 'POST', '/modules/..%2FmodA/genid/gen1/sign'],
    ['a module id with a space', 'POST', '/modules/mod%20A/genid/gen1/sign'],
    ['an unknown route', 'GET', '/modules'],
    ['the root', 'GET', '/'],
    ['POST on the trust bundle', 'POST', '/trust-bundle'],
  ])('404 for %s', async (_, method, path) => {
    await start();
    const answer = await call(socketPath, method, path, method === 'POST' ? signBody('x') : undefined);
    expect(answer.status).toBe(404);
    expect(answer.contentType).toBe('application/json');
    expect(answer.body).toMatchObject({ message: expect.any(String) });
  });

  test.each([
    ['another algorithm', signBody('x', { algo: 'HMACSHA1' })],
    ['no algorithm', signBody('x', { algo: undefined })],
    ['no data', signBody('x', { data: undefined })],
    ['data that is not base64', signBody('x', { data: 'not base64!' })],
    ['data as a number', signBody('x', { data: 12 })],
    ['no key id', signBody('x', { keyId: undefined })],
    ['bad JSON', '{"keyId":'],
    ['an array', '[]'],
    ['null', 'null'],
    ['an empty body', ''],
  ])('400 for %s', async (_, body) => {
    await start();
    const answer = await call(socketPath, 'POST', SIGN, body);
    expect(answer.status).toBe(400);
    expect(answer.contentType).toBe('application/json');
    expect(answer.body).toMatchObject({ message: expect.any(String) });
  });

  test('400 for a body over 64 KiB, declared or streamed, and the API keeps serving', async () => {
    await start();
    const big = signBody('x'.repeat(64 * 1024));
    expect((await call(socketPath, 'POST', SIGN, big)).status).toBe(400);
    expect((await call(socketPath, 'POST', SIGN, big, { 'transfer-encoding': 'chunked' })).status).toBe(400);
    expect((await call(socketPath, 'POST', SIGN, signBody('x'))).status).toBe(200);
  });

  test('500 when looking up the key fails', async () => {
    await start({
      keyOf: () => {
        throw new Error('store down');
      },
    });
    const answer = await call(socketPath, 'POST', SIGN, signBody('x'));
    expect(answer).toStrictEqual({ status: 500, contentType: 'application/json', body: { message: 'internal error' } });
  });
});

test('GET /trust-bundle answers the configured PEM', async () => {
  await start();
  const answer = await call(socketPath, 'GET', '/trust-bundle?api-version=2018-06-28');
  expect(answer).toStrictEqual({ status: 200, contentType: 'application/json', body: { certificate: TRUST_BUNDLE } });
  expect((await call(socketPath, 'GET', '/trust-bundle')).status).toBe(200);
});

test("the Azure SDK's IoT Edge authentication gets a token that verifies, and the trust bundle", async () => {
  await start();
  const provider = new IotEdgeAuthenticationProvider({
    workloadUri: `unix://${socketPath}`,
    deviceId: 'dev1',
    moduleId: 'modA',
    iothubHostName: 'myhub.azure-devices.net',
    authScheme: 'sasToken',
    gatewayHostName: 'localhost',
    generationId: 'gen1',
  });
  try {
    const trustBundle = await new Promise<string | undefined>((resolve, reject) =>
      provider.getTrustBundle((err, ca) => (err ? reject(err) : resolve(ca))),
    );
    expect(trustBundle).toBe(TRUST_BUNDLE);
    const credentials = await provider.getDeviceCredentials();
    const verdict = verifySasToken(credentials.sharedAccessSignature, {
      hubHostName: 'myhub.azure-devices.net',
      deviceId: 'dev1',
      moduleId: 'modA',
      key: KEY,
      now: Date.now(),
    });
    expect(verdict).toMatchObject({ ok: true });
  } finally {
    provider.stop();
  }
});

describe('socket file', () => {
  test('is readable by this user only while listening, and close removes it (twice is fine)', async () => {
    const started = await start();
    expect(started.socketPath).toBe(socketPath);
    expect((await stat(socketPath)).mode & 0o777).toBe(0o600);
    await started.close();
    expect(existsSync(socketPath)).toBe(false);
    await expect(started.close()).resolves.toBeUndefined();
    await expect(call(socketPath, 'GET', '/trust-bundle')).rejects.toThrow();
  });

  test('close ends open keep-alive connections', async () => {
    const started = await start();
    const agent = new Agent({ keepAlive: true });
    await new Promise<void>((resolve, reject) => {
      request({ socketPath, path: '/trust-bundle', agent }, (res) => {
        res.resume();
        res.on('end', resolve);
      })
        .on('error', reject)
        .end();
    });
    // Without closing the idle connection, close() would wait for the keep-alive timeout.
    await started.close();
    expect(existsSync(socketPath)).toBe(false);
    agent.destroy();
  });

  test('close ends connections in the middle of a request', async () => {
    const started = await start();
    const socket = connect({ path: socketPath });
    await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    const ended = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    // Headers but no body yet: the connection is busy, not idle, and would hold close() open until a server timeout.
    socket.write(`POST ${SIGN} HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n{`);
    socket.on('error', () => {});
    await started.close();
    await ended;
    expect(existsSync(socketPath)).toBe(false);
  }, 5_000);

  test('a stale socket file left by a dead process is replaced', async () => {
    const dead: Server = createServer();
    await new Promise<void>((resolve) => dead.listen(socketPath, resolve));
    // Closing unlinks the file; a crashed process leaves it. Recreate that by keeping a copy of the bound file.
    await link(socketPath, `${socketPath}.stale`);
    await new Promise<void>((resolve) => dead.close(() => resolve()));
    await rename(`${socketPath}.stale`, socketPath);
    expect(existsSync(socketPath)).toBe(true);

    await start();
    expect((await call(socketPath, 'GET', '/trust-bundle')).status).toBe(200);
  });

  test('a socket another process listens on is left alone', async () => {
    const live: Server = createServer();
    await new Promise<void>((resolve) => live.listen(socketPath, resolve));
    try {
      const error = await start().catch((e: unknown) => e);
      expect(isEdgeKitError(error, 'invalid-configuration')).toBe(true);
      expect(existsSync(socketPath)).toBe(true);
    } finally {
      await new Promise<void>((resolve) => live.close(() => resolve()));
    }
  });

  test('a file that is not a socket is left alone', async () => {
    await writeFile(socketPath, 'precious');
    const error = await start().catch((e: unknown) => e);
    expect(isEdgeKitError(error, 'invalid-configuration')).toBe(true);
    expect(existsSync(socketPath)).toBe(true);
  });
});
