/**
 * What a broker user may do, in transport addresses: the access plan the service side makes from a deployment
 * (`planAccess`) and each broker transport renders into its broker's own permissions. Types only, at the base of the
 * layers, so transports can render plans without knowing where they come from.
 */
import type { Identity } from './names.js';

/**
 * What one broker user may do. Addresses and keys are the core's (`inputs/gw-1/filter/input1`); a segment `*` stands
 * for any one segment. Publishing and requests always carry the principal's {@link identity}, which the broker checks.
 */
export interface Principal {
  readonly kind: 'module' | 'operator';
  /** The broker user name: the identity, or `<identity>/<replica>` for a replica of a module. */
  readonly username: string;
  /** What its messages and requests are sent under; receivers see it as the publisher. */
  readonly identity: Identity;
  /**
   * The one client id it may connect with, where the broker can bind a client id to a user (Mosquitto); undefined for
   * operators, who may run several clients at once.
   */
  readonly clientId: string | undefined;
  /** Queue addresses it may consume: its own inputs. */
  readonly consume: readonly string[];
  /** Queue addresses it may publish to: the inputs its routes reach, `$upstream`, its dead letters. */
  readonly publish: readonly string[];
  /** Request addresses it may serve: its own methods. */
  readonly serve: readonly string[];
  /** Request addresses it may call: the methods of its device's modules. */
  readonly request: readonly string[];
  /** Retained keys it may read and watch. */
  readonly readRetained: readonly string[];
  /** Retained keys it may write (its last will included). */
  readonly writeRetained: readonly string[];
  /** Everything, on every device (operators): the lists above are then empty. */
  readonly all: boolean;
}

/** The principals of one device and its operator. */
export interface AccessPlan {
  readonly deviceId: string;
  readonly principals: readonly Principal[];
}
