/**
 * `edgekit/hub`: serves the edgeHub module protocol, so modules written on Microsoft's Azure IoT device SDKs join an
 * edgekit deployment unchanged — over MQTT 3.1.1 with TLS, SAS-token authentication, the HTTPS method endpoint and
 * the IoT Edge workload API. Each Azure module is mapped onto an edgekit module client on the configured transport.
 * See docs/iotedge.md for the mapping and what is not supported.
 *
 * @packageDocumentation
 */
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { createSecureContext, createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import type { Aedes } from 'aedes';
import { EdgeKitError } from '../errors.js';
import { checkName } from '../names.js';
import { importPeer, withFunction } from '../peer.js';
import type { Transport } from '../transport.js';
import { memory } from '../transports/memory/index.js';
import { Gateway, type HubStats } from './gateway.js';
import { methodsEndpoint } from './methods-endpoint.js';
import { startWorkloadApi, type WorkloadApi } from './workload.js';

export type { HubStats } from './gateway.js';
export { deriveModuleKey, moduleResourceUri, signSas } from './sas.js';

/** Options for {@link startHub}. */
export interface HubOptions {
  /** The device this hub serves: the `{device}` of every module that connects. */
  readonly deviceId: string;
  /**
   * The IoT Hub host name the modules' SAS tokens and user names name (`HostName=` of their connection string,
   * `IOTEDGE_IOTHUBHOSTNAME`). Nothing connects to it; default `edgekit.local`.
   */
  readonly hubHostName?: string;
  /**
   * Where the Azure modules' messages, twins and methods go: one transport for all (default: the process's memory
   * broker), or a function giving each module its own (to log in to the broker as that module's identity).
   */
  readonly transport?: Transport | ((moduleId: string) => Transport | Promise<Transport>);
  /** Each module's SAS key (base64): a map, or a function read at every connection (so keys can be added live). */
  readonly keys: Readonly<Record<string, string>> | ((moduleId: string) => string | undefined);
  /** The TLS server certificate and key (PEM) the modules connect to; `ca` is the chain they trust (trust bundle). */
  readonly tls: { readonly cert: string; readonly key: string; readonly ca?: string };
  /** Interface to listen on. Default `127.0.0.1`. */
  readonly host?: string;
  /** MQTT over TLS. Default 8883; 0 picks a free port (see {@link Hub.mqttPort}). */
  readonly mqttPort?: number;
  /** HTTPS for module-to-module methods. Default 443; 0 picks a free port. */
  readonly httpsPort?: number;
  /** Also serve the IoT Edge workload API on this unix socket (for `ModuleClient.fromEnvironment`). */
  readonly workloadSocket?: string;
  /** How long a module has to acknowledge an input before its connection is closed (and the input redelivered). Default 30 000. */
  readonly inputAckTimeoutInMs?: number;
  /** Refused connections, dropped packets, failed sessions. Default: `console.warn`. */
  readonly onError?: (error: EdgeKitError) => void;
}

/** A running hub. */
export interface Hub {
  /** The MQTT (TLS) port it listens on. */
  readonly mqttPort: number;
  /** The HTTPS port of the method endpoint. */
  readonly httpsPort: number;
  /** The workload API socket, when one was asked for. */
  readonly workloadSocket: string | undefined;
  /** Ids of the Azure modules connected now. */
  connected(): string[];
  /** Counters since start. */
  stats(): HubStats;
  /** Stops accepting connections, closes every module session (marking them offline) and the servers. */
  close(): Promise<void>;
}

interface AedesModule {
  createBroker(options?: object): Promise<Aedes>;
}

function loadAedes(): Promise<AedesModule> {
  return importPeer(
    {
      entry: 'edgekit/hub',
      pkg: 'aedes',
      install: 'npm install aedes',
      pick: withFunction<AedesModule>('createBroker'),
    },
    async () => {
      const module = (await import('aedes')) as { Aedes?: unknown; default?: unknown };
      return module.Aedes ?? module.default ?? module;
    },
  );
}

function port(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 0 || value > 65_535) {
    throw new RangeError(`startHub: ${name} must be an integer port from 0 to 65535, got ${String(value)}`);
  }
  return value;
}

function listen(server: TlsServer | HttpsServer, portNumber: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(portNumber, host, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

function closeServer(server: TlsServer | HttpsServer): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve();
    server.close(() => resolve());
    if ('closeAllConnections' in server) server.closeAllConnections();
  });
}

/**
 * Starts a hub that Azure IoT Edge modules connect to as they would to edgeHub. Resolves once it listens.
 *
 * @example
 * ```ts
 * import { startHub } from 'edgekit/hub';
 * import { mqtt } from 'edgekit/mqtt';
 *
 * const hub = await startHub({
 *   deviceId: 'gw-1',
 *   transport: mqtt({ url: 'mqtt://127.0.0.1:1883' }),
 *   keys: { 'azure-filter': 'c2VjcmV0LWtleS1vZi10aGUtbW9kdWxlLTMyYnl0ZXM=' },
 *   tls: { cert: serverCertPem, key: serverKeyPem, ca: caPem },
 * });
 * // … later
 * await hub.close();
 * ```
 */
export async function startHub(options: HubOptions): Promise<Hub> {
  if (typeof options !== 'object' || options === null) throw new TypeError('startHub: options must be an object');
  const deviceId = checkName('device id', options.deviceId);
  const hubHostName = options.hubHostName ?? 'edgekit.local';
  if (typeof hubHostName !== 'string' || !/^[A-Za-z0-9.-]{1,253}$/.test(hubHostName)) {
    throw new RangeError(`startHub: hubHostName must be a host name, got ${JSON.stringify(hubHostName)}`);
  }
  const { keys, tls } = options;
  let keyOf: (moduleId: string) => string | undefined;
  if (typeof keys === 'function') keyOf = keys;
  else if (typeof keys === 'object' && keys !== null) {
    for (const [moduleId, key] of Object.entries(keys)) {
      if (typeof key !== 'string' || key.length === 0) {
        throw new TypeError(`startHub: keys["${moduleId}"] must be a base64 key (a non-empty string)`);
      }
    }
    keyOf = (m) => (Object.hasOwn(keys, m) ? keys[m] : undefined);
  } else throw new TypeError('startHub: keys must be a { moduleId: base64Key } map or a function');
  if (typeof tls !== 'object' || tls === null || typeof tls.cert !== 'string' || typeof tls.key !== 'string') {
    throw new TypeError('startHub: tls must be { cert, key } (PEM text), with an optional ca');
  }
  if (tls.ca !== undefined && typeof tls.ca !== 'string') throw new TypeError('startHub: tls.ca must be PEM text');
  const tlsOptions = { cert: tls.cert, key: tls.key, ...(tls.ca ? { ca: tls.ca } : {}) };
  try {
    createSecureContext(tlsOptions);
  } catch (error) {
    throw new RangeError(`startHub: tls is not a usable certificate, key and CA: ${(error as Error).message}`, {
      cause: error,
    });
  }
  const transport = options.transport ?? memory();
  let transportFor: (moduleId: string) => Transport | Promise<Transport>;
  if (typeof transport === 'function') transportFor = transport;
  else if (typeof transport === 'object' && transport !== null && typeof transport.connect === 'function')
    transportFor = () => transport;
  else throw new TypeError('startHub: transport must be a Transport or a function of the module id');
  const host = options.host ?? '127.0.0.1';
  if (typeof host !== 'string' || host.length === 0) throw new TypeError('startHub: host must be a string');
  const mqttPort = port(options.mqttPort, 8883, 'mqttPort');
  const httpsPort = port(options.httpsPort, 443, 'httpsPort');
  const inputAckTimeoutInMs = options.inputAckTimeoutInMs ?? 30_000;
  if (!Number.isInteger(inputAckTimeoutInMs) || inputAckTimeoutInMs < 100 || inputAckTimeoutInMs > 600_000) {
    throw new RangeError(
      `startHub: inputAckTimeoutInMs must be an integer from 100 to 600000, got ${String(inputAckTimeoutInMs)}`,
    );
  }
  if (options.onError !== undefined && typeof options.onError !== 'function') {
    throw new TypeError('startHub: onError must be a function');
  }
  if (options.workloadSocket !== undefined && (typeof options.workloadSocket !== 'string' || !options.workloadSocket)) {
    throw new TypeError('startHub: workloadSocket must be a path');
  }
  const onError =
    options.onError ??
    ((error: EdgeKitError) => console.warn(`[edgekit hub ${deviceId}] ${error.code}: ${error.message}`));

  const { createBroker } = await loadAedes();
  const gateway = new Gateway({
    deviceId,
    hubHostName,
    transportFor,
    keyOf,
    inputAckTimeoutInMs,
    drainTimeoutInMs: 2_000,
    onError,
  });
  const aedes = await createBroker({ heartbeatInterval: 60_000 });
  gateway.attach(aedes);
  // Every socket of the MQTT server, so closing never waits on one aedes no longer handles (a handshake in progress,
  // a CONNECT that arrived as aedes closed).
  const sockets = new Set<Socket>();
  const mqttServer = createTlsServer(tlsOptions, (socket) => aedes.handle(socket));
  mqttServer.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  const httpsServer = createHttpsServer(tlsOptions, methodsEndpoint(gateway));
  for (const server of [mqttServer, httpsServer]) {
    // A client that fails the handshake never reached the protocol: nothing to report per message.
    server.on('tlsClientError', () => {});
  }
  let workload: WorkloadApi | undefined;
  const stop = async () => {
    // Stop listening first; the servers finish closing once aedes has closed every client connection.
    const servers = Promise.all([closeServer(mqttServer), closeServer(httpsServer)]);
    await gateway.close();
    await new Promise<void>((resolve) => aedes.close(() => resolve()));
    for (const socket of sockets) socket.destroy();
    await servers;
    await workload?.close();
  };
  try {
    const boundMqtt = await listen(mqttServer, mqttPort, host);
    const boundHttps = await listen(httpsServer, httpsPort, host);
    // Accept errors after start (EMFILE, …) are reported, never thrown.
    for (const server of [mqttServer, httpsServer]) {
      server.on('error', (error) => gateway.report('transport-error', 'the hub could not accept a connection', error));
    }
    if (options.workloadSocket !== undefined) {
      workload = await startWorkloadApi({ socketPath: options.workloadSocket, keyOf, trustBundle: tls.ca ?? tls.cert });
    }
    let closing: Promise<void> | undefined;
    return {
      mqttPort: boundMqtt,
      httpsPort: boundHttps,
      workloadSocket: workload?.socketPath,
      connected: () => gateway.connected(),
      stats: () => gateway.stats(),
      close: () => {
        closing ??= stop();
        return closing;
      },
    };
  } catch (error) {
    await stop();
    throw new EdgeKitError('invalid-configuration', `the hub could not start: ${(error as Error).message}`, {
      cause: error,
    });
  }
}
