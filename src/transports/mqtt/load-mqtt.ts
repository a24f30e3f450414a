/**
 * Lazy loading of the optional peer dependency `mqtt`: it is imported on the first connect, never at module load, so
 * `edgekit/mqtt` can be imported (and its options validated) without it, and a missing package gives one clear error.
 */
import { importPeer, withFunction } from '../../peer.js';
import type { MqttLibrary } from './options.js';

/** The exact advice in the error when `mqtt` is not installed. */
export const INSTALL_ADVICE = 'npm install mqtt';

/**
 * Imports `mqtt` with `load` and returns it; a missing package becomes `missing-dependency`.
 * `load` exists for tests; the transport uses the default.
 */
export function importMqtt(load: () => Promise<unknown> = () => import('mqtt')): Promise<MqttLibrary> {
  return importPeer(
    { entry: 'edgekit/mqtt', pkg: 'mqtt', install: INSTALL_ADVICE, pick: withFunction<MqttLibrary>('connect') },
    load,
  );
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
