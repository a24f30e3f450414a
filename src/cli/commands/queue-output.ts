/**
 * How `edgekit upstream` and `edgekit deadletter` print what they take from a queue: one readable line, or one JSON
 * object per line (binary bodies as base64). Every text in it came from the broker: shown escaped.
 */

import { bodyOf } from '../../service/monitor.js';
import type { DeadLetterEntry, UpstreamEvent } from '../../service/queues.js';
import { type CliIo, painter, timeOf, visible, visibleJson } from '../shared.js';
import { bodyText } from './monitor.js';

/** An upstream message or a dead letter as one JSON object: the body parsed when JSON or text, else base64. */
export function queueJson(entry: UpstreamEvent | DeadLetterEntry): string {
  if (entry.type === 'undecodable') {
    const { bytes, error, ...rest } = entry;
    return visibleJson({ ...rest, error: error.message, bytesBase64: Buffer.from(bytes).toString('base64') });
  }
  const { body: bytes, decode: _decode, ...rest } = entry;
  const body = bodyOf(entry.contentType, entry.contentEncoding, bytes);
  return visibleJson(
    body instanceof Uint8Array ? { ...rest, bodyBase64: Buffer.from(body).toString('base64') } : { ...rest, body },
  );
}

/** An upstream message or a dead letter as one readable line, coloured on a terminal. */
export function queueLine(entry: UpstreamEvent | DeadLetterEntry, io: CliIo, now = Date.now()): string {
  const paint = painter(io);
  const again = entry.redelivered ? ` ${paint('dim', '(redelivered)')}` : '';
  if (entry.type === 'undecodable') {
    return `${paint('red', `? undecodable message (${entry.bytes.length} bytes): ${visible(entry.error.message)}`)}${again}`;
  }
  const when = paint('dim', timeOf(entry.createdAt, now));
  const from = visible(
    `${entry.source.deviceId}/${entry.source.moduleId}${entry.source.output ? `/${entry.source.output}` : ''}`,
  );
  const properties = Object.entries(entry.properties);
  const props =
    properties.length > 0
      ? ` ${paint('dim', properties.map(([k, v]) => `${visible(k)}=${visible(v)}`).join(' '))}`
      : '';
  const body = bodyText(bodyOf(entry.contentType, entry.contentEncoding, entry.body));
  const id = paint('dim', visible(entry.messageId));
  if ('deadLetter' in entry) {
    const dl = entry.deadLetter;
    const why = visible(
      `${dl.reason} on ${dl.input} after ${dl.attempts} attempt${dl.attempts === 1 ? '' : 's'}: ${dl.error}`,
    );
    return `${when} ${id} ${paint('red', `✗ from ${from} (${why})`)}  ${body}${props}${again}`;
  }
  return `${when} ${id} ${paint('yellow', from)}  ${body}${props}${again}`;
}
