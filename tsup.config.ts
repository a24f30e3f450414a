import { defineConfig } from 'tsup';

// One entry per public subpath; test/package/exports.test.ts checks this list against package.json "exports".
export const entries = {
  index: 'src/index.ts',
  'testing/index': 'src/testing/index.ts',
  'protobuf/index': 'src/codecs/protobuf.ts',
  'routing/index': 'src/routing/index.ts',
  'mqtt/index': 'src/transports/mqtt/index.ts',
  'amqp/index': 'src/transports/amqp/index.ts',
  'hub/index': 'src/hub/index.ts',
} as const;

export default defineConfig([
  {
    entry: entries,
    format: ['esm', 'cjs'],
    dts: true,
    sourcemap: true,
    clean: false,
    splitting: true,
    treeshake: true,
    target: 'node20',
    // Transport, codec and MQTT-server libraries are optional peers: never bundle them.
    external: ['protobufjs', 'mqtt', 'amqplib', 'aedes'],
  },
  {
    // The edgekit command: ESM only (it detects a direct run through import.meta.url), with a shebang.
    entry: { 'cli/index': 'src/cli/index.ts' },
    format: ['esm'],
    dts: false,
    // No source map: it would double the command's size on every install; the library's own maps cover the code.
    sourcemap: false,
    clean: false,
    target: 'node20',
    banner: { js: '#!/usr/bin/env node' },
    external: ['protobufjs', 'mqtt', 'amqplib', 'aedes'],
    // `edgekit demo` bundles the example modules, which import 'edgekit' as users do: resolve it to this source.
    esbuildOptions(options) {
      options.alias = { edgekit: './src/index.ts' };
    },
  },
]);
