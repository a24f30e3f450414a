/**
 * The transport conformance suite, unchanged, against the shared RabbitMQ. Each environment gets its own prefix (its
 * own exchanges and queues); each participant reaches the broker through its own proxy.
 */
import { runTransportConformance } from '../../../src/testing/index.js';
import { amqp } from '../../../src/transports/amqp/index.js';
import { proxiedEnvironment } from '../support/proxied-environment.js';
import { sharedRabbitMQ, uniquePrefix } from './support.js';

await runTransportConformance({
  name: 'amqp (RabbitMQ)',
  async environment() {
    const { port, url } = sharedRabbitMQ();
    const prefix = uniquePrefix();
    return proxiedEnvironment(port, amqp({ url, prefix }), (proxyPort) =>
      amqp({ url: `amqp://guest:guest@127.0.0.1:${proxyPort}`, prefix, connectTimeoutInMs: 5_000 }),
    );
  },
});
