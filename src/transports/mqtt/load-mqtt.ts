/**
 * Lazy loading of the optional peer dependency `mqtt`: it is imported on the first connect, never at module load, so
 * `edgekit/mqtt` can be imported (and its options validated) without it, and a missing package gives one clear error.
 */
import { EdgeKitError } from '../../errors.js';
import type { MqttLibrary } from './options.js';

/** The exact advice in the error when `mqtt` is not installed. */
export const INSTALL_ADVICE = 'npm install mqtt';

function isModuleNotFound(error: unknown): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const { code, message } = error as { code?: unknown; message?: unknown };
  return (
    (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') &&
    typeof message === 'string' &&
    /['"]mqtt['"]/.test(message)
  );
}

function pickConnect(module: unknown): MqttLibrary | undefined {
  for (const candidate of [module, (module as { default?: unknown } | null)?.default]) {
    if (
      (typeof candidate === 'object' || typeof candidate === 'function') &&
      candidate !== null &&
      typeof (candidate as { connect?: unknown }).connect === 'function'
    ) {
      return candidate as MqttLibrary;
    }
  }
  return undefined;
}

/**
 * Imports `mqtt` with `load` and returns it; a missing package becomes `missing-dependency`.
 * `load` exists for tests; the transport uses the default.
 */
export async function importMqtt(load: () => Promise<unknown> = () => import('mqtt')): Promise<MqttLibrary> {
  let module: unknown;
  try {
    module = await load();
  } catch (error) {
    if (isModuleNotFound(error)) {
      throw new EdgeKitError(
        'missing-dependency',
        `edgekit/mqtt needs the optional peer dependency "mqtt" (version 5), which is not installed. Run: ${INSTALL_ADVICE}`,
        { cause: error, details: { package: 'mqtt', install: INSTALL_ADVICE } },
      );
    }
    throw new EdgeKitError('transport-error', 'loading the "mqtt" package failed', { cause: error });
  }
  const lib = pickConnect(module);
  if (lib === undefined) {
    throw new EdgeKitError(
      'missing-dependency',
      `the installed "mqtt" package has no connect(); run: ${INSTALL_ADVICE}@5`,
      {
        details: { package: 'mqtt', install: `${INSTALL_ADVICE}@5` },
      },
    );
  }
  return lib;
}

let loaded: Promise<MqttLibrary> | undefined;

/** {@link importMqtt} once per process; a failure is not cached, so installing the package and retrying works. */
export function loadMqtt(): Promise<MqttLibrary> {
  if (loaded === undefined) {
    const attempt = importMqtt();
    loaded = attempt;
    attempt.catch(() => {
      if (loaded === attempt) loaded = undefined;
    });
  }
  return loaded;
}
