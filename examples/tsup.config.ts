import { fileURLToPath } from 'node:url';
import { defineConfig } from 'tsup';

// Bundles each example module into one file (edgekit and its transport libraries included), so a container
// image needs only Node.js. Used by the Dockerfiles: `npx tsup --config examples/tsup.config.ts`.
const src = (path: string) => fileURLToPath(new URL(`../src/${path}`, import.meta.url));

export default defineConfig({
  entry: {
    'temperature-sensor': 'examples/temperature-sensor/main.ts',
    filter: 'examples/filter/main.ts',
  },
  outDir: 'examples/dist',
  format: ['esm'],
  platform: 'node',
  target: 'node20',
  bundle: true,
  noExternal: [/.*/],
  // One file per module: the lazy import of the transport library must not become a separate chunk.
  splitting: false,
  clean: true,
  esbuildOptions(options) {
    options.alias = {
      edgekit: src('index.ts'),
      'edgekit/mqtt': src('transports/mqtt/index.ts'),
      'edgekit/amqp': src('transports/amqp/index.ts'),
    };
    options.banner = {
      js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);",
    };
  },
});
