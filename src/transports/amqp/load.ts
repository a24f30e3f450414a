/**
 * Loads amqplib on first use. It is an optional peer dependency: a module that never uses `edgekit/amqp` does not
 * need it installed, and one that does gets an error naming the exact command when it is missing.
 */
import { EdgeKitError } from '../../errors.js';
import type { AmqplibModule } from './options.js';

function isModuleNotFound(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const code = (error as { code?: unknown }).code;
  return code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND';
}

/** What `import('amqplib')` resolves to: the CommonJS exports, directly or under `default`. */
type ImportedAmqplib = Partial<AmqplibModule> & { readonly default?: Partial<AmqplibModule> };

/**
 * Imports amqplib; `importer` is replaceable for tests of the missing-package path.
 * Rejects with `missing-dependency` when the package is not installed.
 */
export async function loadAmqplib(
  importer: () => Promise<ImportedAmqplib> = () => import('amqplib'),
): Promise<AmqplibModule> {
  let imported: ImportedAmqplib;
  try {
    imported = await importer();
  } catch (error) {
    if (isModuleNotFound(error)) {
      throw new EdgeKitError('missing-dependency', 'edgekit/amqp needs the amqplib package: npm install amqplib', {
        cause: error,
        details: { package: 'amqplib' },
      });
    }
    throw error;
  }
  const lib = typeof imported.connect === 'function' ? imported : imported.default;
  if (lib === undefined || typeof lib.connect !== 'function') {
    throw new EdgeKitError('missing-dependency', 'the installed amqplib has no connect(); npm install amqplib', {
      details: { package: 'amqplib' },
    });
  }
  return lib as AmqplibModule;
}
