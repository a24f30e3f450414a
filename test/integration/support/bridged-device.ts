/**
 * A device broker bridged to a cloud broker, both real Mosquittos on loopback: the cloud starts first, a TCP proxy
 * stands for the network between them (so a test can cut the link), and the device runs the `connection` section
 * `mosquittoBridge` renders, pointed at the proxy. Used by the bridge tests and `npm run measure:bridge`.
 */
import { type MosquittoBridgeOptions, mosquittoBridge } from '../../../src/transports/mqtt/index.js';
import { type Mosquitto, type StartMosquittoOptions, startMosquitto } from '../brokers/mosquitto.js';
import { startTcpProxy, type TcpProxy } from './tcp-proxy.js';

export interface BridgedDevice {
  readonly cloud: Mosquitto;
  readonly device: Mosquitto;
  /** The network between the device and the cloud. */
  readonly link: TcpProxy;
  /** Stops both brokers and the proxy; idempotent. */
  stop(): Promise<void>;
}

export interface StartBridgedDeviceOptions {
  readonly deviceId: string;
  /** Options of the cloud broker (persistence is on). */
  readonly cloud?: StartMosquittoOptions;
  /** Bridge options besides the device and the cloud's address. Default: a 5 s keepalive, reconnects after 1–2 s. */
  readonly bridge?: Omit<MosquittoBridgeOptions, 'deviceId' | 'cloudUrl'>;
}

export async function startBridgedDevice(options: StartBridgedDeviceOptions): Promise<BridgedDevice> {
  const cloud = await startMosquitto({ persistence: true, ...options.cloud });
  const link = await startTcpProxy(cloud.port);
  const { config } = mosquittoBridge({
    deviceId: options.deviceId,
    cloudUrl: `mqtt://127.0.0.1:${link.port}`,
    keepaliveInSeconds: 5,
    reconnectInSeconds: { min: 1, max: 2 },
    ...options.bridge,
  });
  const device = await startMosquitto({ persistence: true, config: config.split('\n') });
  return {
    cloud,
    device,
    link,
    async stop() {
      await device.stop();
      await link.close();
      await cloud.stop();
    },
  };
}
