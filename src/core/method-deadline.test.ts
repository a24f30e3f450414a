// A method handler that settles after its deadline — typically by rejecting with the abort it was given, or with a
// late result — is answered 504, never a late 500/200 that could beat the caller's own 504.
import { describe, expect, test } from 'vitest';
import { typed } from '../codecs/schema.js';
import { connect } from '../connect.js';
import { ManualClock } from '../testing/manual-clock.js';
import { MemoryBroker, memory } from '../transports/memory/index.js';
import { defineModule, method } from './contract.js';
import { decodeMethodResponse, toJsonBytes } from './wire.js';

const Slow = defineModule({ methods: { slow: method(typed<{ reject: boolean }>(), typed<{ late: true }>()) } });

describe('a handler that settles after the deadline', () => {
  for (const reject of [true, false]) {
    test(`answers 504 when it ${reject ? 'rejects with the abort' : 'returns late'}`, async () => {
      const clock = new ManualClock();
      const broker = new MemoryBroker({ clock });
      await using server = await connect(Slow, { deviceId: 'd', moduleId: 's', transport: memory({ broker }), clock });
      await server.handle('slow', (req, { signal }) => {
        return new Promise((resolve, rejectWith) =>
          signal.addEventListener('abort', () => (req.reject ? rejectWith(signal.reason) : resolve({ late: true }))),
        );
      });
      const raw = await memory({ broker }).connect({ clientId: 'raw' });
      // The transport waits longer than the request's own budget, so the server's answer is what comes back.
      const reply = raw.request(
        'methods/d/s',
        toJsonBytes({ method: 'slow', payload: { reject }, timeoutInMs: 1_000 }),
        { timeoutInMs: 60_000 },
      );
      await clock.advance(1_001);
      expect(decodeMethodResponse(await reply)).toEqual({
        status: 504,
        payload: { message: `method "slow" did not answer within the caller's deadline` },
      });
      await raw.close();
    });
  }
});
