/**
 * Loading an optional peer dependency (mqtt, amqplib, protobufjs, aedes) on first use: an entry point can be imported
 * and its options checked without the package, and a missing package is one `missing-dependency` error naming the
 * command that installs it.
 */
import { EdgeKitError } from './errors.js';

/** What to load and how to tell the right package from something else by that name. */
export interface PeerSpec<T> {
  /** The edgekit entry that needs it, for the message: `edgekit/mqtt`. */
  readonly entry: string;
  /** The npm package name. */
  readonly pkg: string;
  /** The command that installs it: `npm install mqtt`. */
  readonly install: string;
  /** The package's API found in what `import()` returned (directly or under `default`), or `undefined`. */
  pick(module: unknown): T | undefined;
}

function isModuleNotFound(error: unknown, pkg: string): boolean {
  if (typeof error !== 'object' || error === null) return false;
  const { code, message } = error as { code?: unknown; message?: unknown };
  return (
    (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') &&
    (typeof message !== 'string' || message.includes(`'${pkg}'`) || message.includes(`"${pkg}"`))
  );
}

/** The first of `module` and `module.default` that has the function `name`. */
export function withFunction<T>(name: string): (module: unknown) => T | undefined {
  return (module) => {
    for (const candidate of [module, (module as { default?: unknown } | null)?.default]) {
      if (
        (typeof candidate === 'object' || typeof candidate === 'function') &&
        candidate !== null &&
        typeof (candidate as Record<string, unknown>)[name] === 'function'
      ) {
        return candidate as T;
      }
    }
    return undefined;
  };
}

/**
 * Imports a peer with `load` (a literal `import('pkg')` at the call site, so bundlers leave it external) and returns
 * its API. A missing package rejects with `missing-dependency` (the install command in the message and in
 * `details.install`); any other failure while loading it with `transport-error`.
 */
export async function importPeer<T>(spec: PeerSpec<T>, load: () => Promise<unknown>): Promise<T> {
  let module: unknown;
  try {
    module = await load();
  } catch (error) {
    if (isModuleNotFound(error, spec.pkg)) {
      throw new EdgeKitError(
        'missing-dependency',
        `${spec.entry} needs the optional peer dependency "${spec.pkg}", which is not installed. Run: ${spec.install}`,
        { cause: error, details: { package: spec.pkg, install: spec.install } },
      );
    }
    throw new EdgeKitError('transport-error', `loading the "${spec.pkg}" package failed`, { cause: error });
  }
  const api = spec.pick(module);
  if (api === undefined) {
    throw new EdgeKitError(
      'missing-dependency',
      `the installed "${spec.pkg}" package is not the one ${spec.entry} needs. Run: ${spec.install}`,
      { details: { package: spec.pkg, install: spec.install } },
    );
  }
  return api;
}
