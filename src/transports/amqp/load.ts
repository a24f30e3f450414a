/**
 * Loads amqplib on first use. It is an optional peer dependency: a module that never uses `edgekit/amqp` does not
 * need it installed, and one that does gets an error naming the exact command when it is missing.
 */
import { importPeer, withFunction } from '../../peer.js';
import type { AmqplibModule } from './options.js';

/**
 * Imports amqplib; `importer` is replaceable for tests of the missing-package path.
 * Rejects with `missing-dependency` when the package is not installed.
 */
export function loadAmqplib(importer: () => Promise<unknown> = () => import('amqplib')): Promise<AmqplibModule> {
  return importPeer(
    {
      entry: 'edgekit/amqp',
      pkg: 'amqplib',
      install: 'npm install amqplib',
      pick: withFunction<AmqplibModule>('connect'),
    },
    importer,
  );
}
