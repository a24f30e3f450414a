/**
 * vitest globalSetup for the AMQP integration tests: one RabbitMQ for every suite (a node takes about 6 s to boot,
 * and this machine has two cores), with an AMQPS listener (test CA, client certificates required), extra users, an
 * extra vhost and a `max_message_size` of {@link MAX_MESSAGE_SIZE}. Suites read its URL with `inject('rabbitmq')`.
 * A suite that must restart the broker asks this process to do it through a small loopback control endpoint, so the
 * node stays owned — and stopped — by the process that started it.
 */
import http from 'node:http';
import type { TestProject } from 'vitest/node';
import { startRabbitMQ } from '../brokers/rabbitmq.js';
import { createTestPki } from '../mqtt/support/pki.js';

/** Users besides guest, and a vhost besides `/`, for the credentials tests. */
export const TEST_USERS = {
  filter: 's3cret',
  'user with space': 'p@ss/w:rd',
  /**
   * An operator (identity `$operator/no-routes`) under a topology it may not change: a test binds its exchange to the
   * retained keys it may write, and routes are not among them (see {@link TEST_PERMISSIONS}).
   */
  'no-routes': 'no-routes-secret',
  /** May do everything guest may, except declare the last-value queues of route tables. */
  'no-route-queues': 'no-route-queues-secret',
  /** May do everything guest may, except publish through the exchange of connections without an identity. */
  'no-messages': 'no-messages-secret',
} as const;
export const TEST_VHOST = 'edge';

/**
 * The broker's `max_message_size` (bytes of a message body): 512 KiB, the value the production docs recommend, so
 * the tests run against what deployments run, and can go over it cheaply (RabbitMQ's default is 128 MiB).
 */
export const MAX_MESSAGE_SIZE = 524_288;

/**
 * Narrower rights for three users, all for the default prefix `edgekit`: `no-routes` may not declare (configure) its
 * own exchange `edgekit.from.$operator.no-routes`, so its connections use the bindings a test made for it and declare
 * nothing; `no-route-queues` may not configure (declare) a `routes/…` key's last-value queue, which a connection that
 * declares its own topology does before its first write of the key; `no-messages` may not write (publish to) the
 * exchange of connections without an identity, `edgekit.anonymous`.
 */
export const TEST_PERMISSIONS = {
  'no-routes': { configure: '^(?!edgekit\\.from\\.\\$operator\\.no-routes$)' },
  'no-route-queues': { configure: '^(?!edgekit\\.retained\\.routes\\.)' },
  'no-messages': { write: '^(?!edgekit\\.anonymous$)' },
} as const;

export interface SharedRabbitMQ {
  readonly url: string;
  readonly port: number;
  /** AMQPS port; the broker requires a client certificate signed by {@link ca}. */
  readonly tlsPort: number;
  /** PEM texts: the test CA, a client certificate and key it signed, and a CA that signed nothing. */
  readonly ca: string;
  readonly clientCert: string;
  readonly clientKey: string;
  readonly otherCa: string;
  /** POST `${controlUrl}/restart` restarts the node (same port, same data) and answers once it accepts again. */
  readonly controlUrl: string;
}

declare module 'vitest' {
  export interface ProvidedContext {
    rabbitmq: SharedRabbitMQ;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const pki = createTestPki();
  const broker = await startRabbitMQ({
    tls: {
      certFile: pki.serverCertFile,
      keyFile: pki.serverKeyFile,
      caFile: pki.caFile,
      requireClientCertificate: true,
    },
    users: TEST_USERS,
    permissions: TEST_PERMISSIONS,
    vhosts: [TEST_VHOST],
    maxMessageSize: MAX_MESSAGE_SIZE,
  });
  let restarting: Promise<void> | undefined;
  const control = http.createServer((request, response) => {
    if (request.method !== 'POST' || request.url !== '/restart') {
      response.writeHead(404).end();
      return;
    }
    restarting ??= broker.restart().finally(() => {
      restarting = undefined;
    });
    restarting.then(
      () => response.writeHead(204).end(),
      (error: unknown) => response.writeHead(500).end(String(error)),
    );
  });
  await new Promise<void>((resolve, reject) => {
    control.once('error', reject);
    control.listen(0, '127.0.0.1', () => resolve());
  });
  const address = control.address();
  if (address === null || typeof address === 'string') throw new Error('control server has no port');
  project.provide('rabbitmq', {
    url: broker.url,
    port: broker.port,
    tlsPort: broker.tlsPort ?? 0,
    ca: pki.ca,
    clientCert: pki.clientCert,
    clientKey: pki.clientKey,
    otherCa: pki.otherCa,
    controlUrl: `http://127.0.0.1:${address.port}`,
  });
  return async () => {
    await new Promise<void>((resolve) => control.close(() => resolve()));
    await broker.stop();
    pki.remove();
  };
}
