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
    ],
  },
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts', 'examples/**/*.test.ts'],
    typecheck: {
      enabled: true,
      include: ['src/**/*.test-d.ts', 'test/**/*.test-d.ts'],
      tsconfig: './tsconfig.json',
    },
    testTimeout: 20_000,
    hookTimeout: 60_000,
  },
});
