import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const src = (path: string) => fileURLToPath(new URL(`./src/${path}`, import.meta.url));

export default defineConfig({
  resolve: {
    // Examples and docs import 'edgekit/…' as users do; in the repo that is the source.
    alias: [
      { find: /^edgekit$/, replacement: src('index.ts') },
      { find: /^edgekit\/testing$/, replacement: src('testing/index.ts') },
      { find: /^edgekit\/protobuf$/, replacement: src('codecs/protobuf.ts') },
      { find: /^edgekit\/routing$/, replacement: src('routing/index.ts') },
      { find: /^edgekit\/mqtt$/, replacement: src('transports/mqtt/index.ts') },
      { find: /^edgekit\/amqp$/, replacement: src('transports/amqp/index.ts') },
      { find: /^edgekit\/hub$/, replacement: src('hub/index.ts') },
    ],
  },
  test: {
    // Spelled out because it is a promise of the project: an unhandled rejection or uncaught exception anywhere in a
    // test run (in a test, a hook, or a callback that outlived its test) fails the run. Module processes started by
    // tests run with Node's default, which ends the process on either; their tests require a clean stderr.
    dangerouslyIgnoreUnhandledErrors: false,
    testTimeout: 20_000,
    hookTimeout: 60_000,
    projects: [
      {
        extends: true,
        test: {
          name: 'main',
          include: ['src/**/*.test.ts', 'test/**/*.test.ts', 'examples/**/*.test.ts'],
          exclude: ['test/integration/amqp/**', 'test/faults/**', '**/node_modules/**'],
          typecheck: {
            enabled: true,
            include: ['src/**/*.test-d.ts', 'test/**/*.test-d.ts'],
            tsconfig: './tsconfig.json',
          },
        },
      },
      {
        // One RabbitMQ for every AMQP suite (it takes seconds to boot); two suites restart it, so files run one at a time.
        extends: true,
        test: {
          name: 'amqp',
          include: ['test/integration/amqp/**/*.test.ts'],
          globalSetup: ['test/integration/amqp/global-setup.ts'],
          fileParallelism: false,
        },
      },
      {
        // The fault suite: modules on real Mosquitto and RabbitMQ through proxies that drop, stall, flap and fragment
        // links. Its own RabbitMQ (some suites restart it); files one at a time, as faults are about timing.
        extends: true,
        test: {
          name: 'faults',
          include: ['test/faults/**/*.test.ts'],
          globalSetup: ['test/integration/amqp/global-setup.ts'],
          fileParallelism: false,
          testTimeout: 60_000,
        },
      },
    ],
  },
});
