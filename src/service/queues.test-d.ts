import { expectTypeOf, test } from 'vitest';
import { json } from '../codecs/codec.js';
import type { DeadLetterInfo } from '../core/envelope.js';
import { decodeEnvelope, type Envelope } from '../core/envelope.js';
import type { EdgeKitError } from '../errors.js';
import type { ServiceClient } from './client.js';
import type {
  DeadLetterEntry,
  DeadLetterListing,
  DeadLetterQueue,
  PurgeResult,
  ReplayResult,
  UpstreamConsumer,
  UpstreamEvent,
} from './queues.js';

declare const service: ServiceClient;

test('decodeEnvelope gives a typed envelope', () => {
  expectTypeOf(decodeEnvelope).parameter(0).toEqualTypeOf<Uint8Array>();
  expectTypeOf(decodeEnvelope(new Uint8Array())).toEqualTypeOf<Envelope>();
  expectTypeOf(decodeEnvelope(new Uint8Array()).header.deadLetter).toEqualTypeOf<DeadLetterInfo | undefined>();
});

test('upstream yields messages or undecodable bytes, narrowed by type; decode infers from the codec', async () => {
  expectTypeOf(service.upstream('gw')).resolves.toEqualTypeOf<UpstreamConsumer>();
  // @ts-expect-error prefetch is a number
  void service.upstream('gw', { prefetch: '5' });
  for await (const event of await service.upstream('gw', { prefetch: 1 })) {
    expectTypeOf(event).toEqualTypeOf<UpstreamEvent>();
    if (event.type === 'message') {
      expectTypeOf(event.decode(json<{ t: number }>())).resolves.toEqualTypeOf<{ t: number }>();
      expectTypeOf(event.body).toEqualTypeOf<Uint8Array>();
      expectTypeOf(event.publisher).toEqualTypeOf<string | undefined>();
      // @ts-expect-error only dead letters have a dead-letter field
      void event.deadLetter;
    } else {
      expectTypeOf(event.error).toEqualTypeOf<EdgeKitError>();
      // @ts-expect-error undecodable bytes have no message id
      void event.messageId;
    }
  }
});

test('dead-letter operations resolve to typed results; entries narrow to dead letters with their info', async () => {
  const dead = service.deadLetters('gw', 'filter');
  expectTypeOf(dead).toEqualTypeOf<DeadLetterQueue>();
  expectTypeOf(dead.list({ limit: 10 })).resolves.toEqualTypeOf<DeadLetterListing>();
  expectTypeOf(dead.replay()).resolves.toEqualTypeOf<ReplayResult>();
  expectTypeOf(dead.purge()).resolves.toEqualTypeOf<PurgeResult>();
  const [entry] = (await dead.list()).entries;
  expectTypeOf(entry).toEqualTypeOf<DeadLetterEntry | undefined>();
  if (entry?.type === 'message') expectTypeOf(entry.deadLetter).toEqualTypeOf<DeadLetterInfo>();
  // @ts-expect-error idleInMs is a number
  void dead.purge({ idleInMs: '1s' });
});
