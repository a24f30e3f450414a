/**
 * The part of the IoT Edge workload API that unmodified Azure SDK modules call at start-up (`fromEnvironment`):
 * HTTP/1.1 on a unix socket that signs SAS tokens with a module's key and hands out the trust bundle, so the module
 * never holds its key.
 */

import { createHmac } from 'node:crypto';
import { chmod, lstat, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect } from 'node:net';
import { EdgeKitError } from '../errors.js';
import { isName } from '../names.js';
import { decodeSegment, readBody, sendJson } from './http.js';

/** Options for {@link startWorkloadApi}. */
export interface WorkloadApiOptions {
  /** Where to listen; a module finds it as `IOTEDGE_WORKLOADURI=unix://{socketPath}`. */
  socketPath: string;
  /** The base64 key of a module, or `undefined` for a module this API does not know (answered with 404). */
  keyOf(moduleId: string): string | undefined;
  /** PEM of the CA chain the modules should trust for the hub's TLS certificate (`GET /trust-bundle`). */
  trustBundle: string;
  /** The generation id modules must sign with (`IOTEDGE_MODULEGENERATIONID`); any is accepted when undefined. */
  generationId?: string;
}

/** A running workload API; see {@link startWorkloadApi}. */
export interface WorkloadApi {
  /** The socket it listens on. */
  readonly socketPath: string;
  /** Stops listening, drops open connections and removes the socket file. Idempotent. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Largest sign request body accepted; the SDK's are a few hundred bytes. */
const MAX_BODY_BYTES = 64 * 1024;
const SIGN_PATH = /^\/modules\/([^/]+)\/genid\/([^/]+)\/sign$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * Starts the workload API on a unix socket. It answers, whatever the `api-version` query:
 * - `POST /modules/{moduleId}/genid/{generationId}/sign` with `{"keyId", "algo": "HMACSHA256", "data": base64}` →
 *   `{"digest": base64 HMAC-SHA256 of data under the module's key}`; 404 for an unknown module or generation id,
 *   400 for another algorithm or a bad body;
 * - `GET /trust-bundle` → `{"certificate": trustBundle}`;
 * - anything else → 404.
 *
 * Every answer is `application/json` (the Node SDK parses no other), errors as `{"message": "…"}`. A socket file
 * left by a process that died is replaced; the new one is made readable by this user only. Unlike the real workload
 * API, it does not check which process calls.
 *
 * @throws EdgeKitError `invalid-configuration` if the path is taken by a live socket or by something not a socket.
 * @example
 * ```ts
 * const api = await startWorkloadApi({ socketPath: '/run/edgekit/workload.sock', keyOf: (m) => keys.get(m), trustBundle: caPem });
 * // module environment: IOTEDGE_WORKLOADURI=unix:///run/edgekit/workload.sock
 * await api.close();
 * ```
 */
export async function startWorkloadApi(options: WorkloadApiOptions): Promise<WorkloadApi> {
  const { socketPath } = options;
  await removeStaleSocket(socketPath);
  const server = createServer((req, res) => {
    handle(req, res, options).catch(() => {
      if (!res.headersSent && !res.destroyed) sendJson(res, 500, { message: 'internal error' });
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(socketPath, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const api = new WorkloadApiImpl(server, socketPath);
  try {
    await chmod(socketPath, 0o600);
  } catch (error) {
    await api.close();
    throw error;
  }
  return api;
}

class WorkloadApiImpl implements WorkloadApi {
  readonly socketPath: string;
  readonly #server: Server;
  #closed: Promise<void> | undefined;

  constructor(server: Server, socketPath: string) {
    this.#server = server;
    this.socketPath = socketPath;
  }

  close(): Promise<void> {
    this.#closed ??= new Promise<void>((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    }).then(() => rm(this.socketPath, { force: true }).catch(() => {}));
    return this.#closed;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** Removes a socket file nobody listens on (left by a process that died); refuses a live socket or another file. */
async function removeStaleSocket(socketPath: string): Promise<void> {
  let isSocket: boolean;
  try {
    isSocket = (await lstat(socketPath)).isSocket();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  if (!isSocket) {
    throw new EdgeKitError('invalid-configuration', `workload API: ${socketPath} exists and is not a socket`);
  }
  if (await someoneListens(socketPath)) {
    throw new EdgeKitError('invalid-configuration', `workload API: another process already listens on ${socketPath}`);
  }
  await rm(socketPath, { force: true });
}

function someoneListens(socketPath: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const socket = connect({ path: socketPath });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ECONNREFUSED' || error.code === 'ENOENT') resolve(false);
      else reject(error);
    });
  });
}

async function handle(req: IncomingMessage, res: ServerResponse, options: WorkloadApiOptions): Promise<void> {
  const path = (req.url ?? '/').split('?', 1)[0]!;
  if (path === '/trust-bundle' && req.method === 'GET') {
    sendJson(res, 200, { certificate: options.trustBundle });
    return;
  }
  const match = SIGN_PATH.exec(path);
  const moduleId = match && decodeSegment(match[1]!);
  const generationId = match && decodeSegment(match[2]!);
  if (!isName(moduleId) || !generationId || req.method !== 'POST') {
    sendJson(res, 404, { message: 'not found' });
    return;
  }
  if (options.generationId !== undefined && generationId !== options.generationId) {
    sendJson(res, 404, { message: 'unknown module or generation id' });
    return;
  }
  const key = options.keyOf(moduleId);
  if (key === undefined) {
    sendJson(res, 404, { message: 'unknown module or generation id' });
    return;
  }

  const body = await readBody(req, MAX_BODY_BYTES);
  if (body === undefined) {
    // The rest of the body is still on its way: answer, then drop the connection rather than read it all.
    sendJson(res, 400, { message: `request body is over ${MAX_BODY_BYTES} bytes` }, { close: true });
    return;
  }
  const request = parseSignRequest(body);
  if (typeof request === 'string') {
    sendJson(res, 400, { message: request });
    return;
  }
  const digest = createHmac('sha256', Buffer.from(key, 'base64'))
    .update(Buffer.from(request.data, 'base64'))
    .digest('base64');
  sendJson(res, 200, { digest });
}

/** The sign request's fields, or what is wrong with it. */
function parseSignRequest(body: Buffer): { keyId: string; data: string } | string {
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch {
    return 'request body is not JSON';
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'request body is not a JSON object';
  const { keyId, algo, data } = value as Record<string, unknown>;
  if (typeof keyId !== 'string') return 'keyId must be a string';
  if (algo !== 'HMACSHA256') return 'algo must be HMACSHA256';
  if (typeof data !== 'string' || !BASE64.test(data)) return 'data must be base64';
  return { keyId, data };
}
