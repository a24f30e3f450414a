/**
 * `edgekit/mqtt`: the transport for MQTT 5 brokers (Mosquitto on a device or gateway, or any MQTT 5 broker), on
 * mqtt.js. The `mqtt` package is an optional peer dependency, imported on the first connect. Topic layout, QoS,
 * sessions and the other conventions are described in docs/transports/mqtt.md.
 */
import type {
  Transport,
  TransportCapabilities,
  TransportConnection,
  TransportConnectOptions,
} from '../../transport.js';
import { type MqttSizeMemory, openConnection } from './connection.js';
import { loadMqtt } from './load-mqtt.js';
import { type MqttTransportOptions, type ResolvedMqttOptions, resolveOptions } from './options.js';

export {
  type HashMosquittoPasswordOptions,
  hashMosquittoPassword,
  type MosquittoAcl,
  type MosquittoCertificateListener,
  type MosquittoClient,
  type MosquittoDynamicSecurityConfig,
  type MosquittoDynamicSecurityOptions,
  type MosquittoPasswordHash,
  type MosquittoPrincipal,
  type MosquittoRole,
  type MosquittoSecurityConfigOptions,
  mosquittoDynamicSecurity,
  mosquittoSecurityConfig,
} from './authorization.js';
export {
  type BridgeDirection,
  type BridgeTopic,
  type MosquittoBridge,
  type MosquittoBridgeOptions,
  type MosquittoBridgeTls,
  mosquittoBridge,
} from './bridge.js';
export type { MqttConnectionDiagnostics } from './connection.js';
export type { MqttClientOptions, MqttLibrary, MqttTlsOptions, MqttTransportOptions, PemInput } from './options.js';
export { DEFAULT_TOPIC_PREFIX } from './topics.js';

class MqttTransport implements Transport {
  readonly name = 'mqtt';
  readonly capabilities: TransportCapabilities;
  /** What connections learn of the broker's size limit outlives them: a refused size is not sent again. */
  private readonly sizes: MqttSizeMemory = { refused: Number.POSITIVE_INFINITY };

  constructor(private readonly settings: ResolvedMqttOptions) {
    this.capabilities = {
      // A module that never connected has no session, so nothing is queued for it.
      keepsMessagesBeforeFirstConsumer: false,
      // Only with a share group: plain subscriptions give every connection its own copy.
      sharedConsumers: settings.shareGroup !== undefined,
      // Retained messages matching a wildcard filter are all sent on SUBSCRIBE.
      listsRetained: true,
    };
  }

  async connect(options: TransportConnectOptions): Promise<TransportConnection> {
    const lib = this.settings.lib ?? (await loadMqtt());
    return openConnection(lib, this.settings, options, this.sizes);
  }
}

/**
 * Creates the MQTT transport. Options are validated here (a `TypeError`/`RangeError` names the bad one); the `mqtt`
 * package is imported on the first connect, and a missing one rejects with `EdgeKitError` code `missing-dependency`
 * that says `npm install mqtt`.
 *
 * Every connection uses MQTT 5 with QoS 1, a persistent session (clean start off, `sessionExpiryInSeconds`), no
 * automatic reconnect (the core reconnects) and TCP_NODELAY.
 *
 * @example
 * ```ts
 * import { connect } from 'edgekit';
 * import { mqtt } from 'edgekit/mqtt';
 *
 * const client = await connect(Filter, {
 *   transport: mqtt({ url: 'mqtt://127.0.0.1:1883' }),
 *   deviceId: 'gateway-1',
 *   moduleId: 'filter',
 * });
 * ```
 */
export function mqtt(options: MqttTransportOptions): Transport {
  return new MqttTransport(resolveOptions(options));
}
