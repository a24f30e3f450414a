/**
 * edgeHub's HTTPS endpoint for module-to-module direct methods, as the Azure device SDK's `invokeMethod` calls it:
 * `POST /twins/{device}/modules/{module}/methods` with the caller's SAS token and `x-ms-edge-moduleId`. The call is
 * made by the caller's own edgekit session, so the target sees the caller as it would any edgekit module.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { untypedModule } from '../core/contract.js';
import { isEdgeKitError, messageOf } from '../errors.js';
import { isName } from '../names.js';
import type { Gateway } from './gateway.js';
import { decodeSegment, readBody, sendJson } from './http.js';
import { verifySasToken } from './sas.js';

/** A request body holds at most a 128 KB payload and a few fields. */
const MAX_BODY_BYTES = 160 * 1024;
const PATH = /^\/twins\/([^/?]+)\/modules\/([^/?]+)\/methods\/?(?:\?.*)?$/;

/** edgeHub answers with this content type. */
const answer = (res: ServerResponse, status: number, body: unknown) => sendJson(res, status, body, { charset: true });

/** The request handler of the hub's HTTPS server. */
export function methodsEndpoint(gateway: Gateway): (req: IncomingMessage, res: ServerResponse) => void {
  const { deviceId, hubHostName } = gateway.options;
  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const match = PATH.exec(req.url ?? '');
    if (!match)
      return answer(res, 404, { message: 'not found: this hub serves POST /twins/{device}/modules/{module}/methods' });
    if (req.method !== 'POST') return answer(res, 405, { message: 'use POST' });
    const targetDevice = decodeSegment(match[1] as string);
    const targetModule = decodeSegment(match[2] as string);
    if (!isName(targetDevice) || !isName(targetModule)) {
      return answer(res, 400, { message: 'the path does not name a device and a module' });
    }

    const header = req.headers['x-ms-edge-moduleid'];
    const caller = typeof header === 'string' ? header.split('/') : [];
    if (caller.length !== 2 || !isName(caller[0]) || !isName(caller[1])) {
      return answer(res, 400, { message: 'the x-ms-edge-moduleId header must name the caller as <device>/<module>' });
    }
    const [callerDevice, callerModule] = caller as [string, string];
    if (callerDevice !== deviceId) {
      return answer(res, 401, { message: 'Only modules on the same device can invoke DirectMethods' });
    }
    const key = gateway.keyOf(callerModule);
    const verdict =
      key === undefined
        ? ({ ok: false, reason: `module ${callerModule} has no key on this hub` } as const)
        : verifySasToken(req.headers.authorization, {
            hubHostName,
            deviceId,
            moduleId: callerModule,
            key,
            now: Date.now(),
          });
    if (!verdict.ok) {
      gateway.count('refused');
      return answer(res, 401, { message: `not authorized: ${verdict.reason}` });
    }

    const body = await readBody(req, MAX_BODY_BYTES);
    if (body === undefined) return answer(res, 413, { message: `the request is over ${MAX_BODY_BYTES} bytes` });
    let request: { methodName?: unknown; payload?: unknown; responseTimeoutInSeconds?: unknown };
    try {
      request = JSON.parse(body.toString('utf8')) as typeof request;
    } catch {
      return answer(res, 400, { message: 'the body is not JSON' });
    }
    if (typeof request !== 'object' || request === null || typeof request.methodName !== 'string') {
      return answer(res, 400, { message: 'the body must be {"methodName": "...", "payload": ...}' });
    }
    const seconds = request.responseTimeoutInSeconds ?? 30;
    if (typeof seconds !== 'number' || !Number.isFinite(seconds)) {
      return answer(res, 400, { message: 'responseTimeoutInSeconds must be a number' });
    }
    const session = gateway.sessionOf(callerModule);
    if (!session?.edge) {
      return answer(res, 503, {
        message: `${callerModule} must be connected (open()) to invoke methods through this hub`,
      });
    }
    try {
      const result = await session.edge.invoke(
        untypedModule,
        { deviceId: targetDevice, moduleId: targetModule },
        request.methodName,
        request.payload ?? null,
        { timeoutInMs: Math.round(Math.min(300, Math.max(5, seconds)) * 1000) },
      );
      if (!result.ok && (result.status === 404 || result.status === 504)) {
        return answer(res, result.status, { message: result.message });
      }
      return answer(res, 200, { status: result.status, payload: result.payload ?? null });
    } catch (error) {
      if (error instanceof TypeError || error instanceof RangeError)
        return answer(res, 400, { message: error.message });
      if (isEdgeKitError(error) && error.code === 'timeout') return answer(res, 504, { message: error.message });
      return answer(res, 500, { message: messageOf(error) });
    }
  };
  return (req, res) => {
    handle(req, res).catch((error: unknown) => {
      gateway.report('transport-error', 'a method request through the hub failed', error);
      if (!res.headersSent) answer(res, 500, { message: 'internal error' });
      else res.destroy();
    });
  };
}
