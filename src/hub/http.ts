/**
 * What the hub's two small HTTP servers (the HTTPS method endpoint and the workload API) share: JSON answers, a
 * bounded request body, and path segments decoded without throwing.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * Answers `body` as JSON (`content-type: application/json`, which the Azure SDK needs to parse it). `close` asks the
 * client to close the connection (after a body that was not read to its end).
 */
export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  options: { readonly charset?: boolean; readonly close?: boolean } = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': options.charset ? 'application/json; charset=utf-8' : 'application/json',
    'content-length': Buffer.byteLength(text),
    ...(options.close ? { connection: 'close' } : {}),
  });
  res.end(text);
}

/** The whole request body, or `undefined` as soon as it is known to be over `limit` bytes. */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer | undefined> {
  if (Number(req.headers['content-length']) > limit) return Promise.resolve(undefined);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) resolve(undefined);
      else chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** A URL path segment decoded, or `undefined` when it is not valid percent-encoding. */
export function decodeSegment(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}
