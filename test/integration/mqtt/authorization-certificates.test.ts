/**
 * The certificate listener of `mosquittoSecurityConfig` on a real Mosquitto: a module logs in with a client
 * certificate whose common name is its user name (no password), gets exactly its rights, and cannot take over
 * another module's session by asking for its client id — the dynamic-security plugin binds client ids only at
 * password logins, so the listener makes the user name the client id.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EdgeKitError, isEdgeKitError } from '../../../src/errors.js';
import { planAccess } from '../../../src/service/access.js';
import { readDeployment } from '../../../src/service/deployment.js';
import type { TransportConnection } from '../../../src/transport.js';
import { mosquittoDynamicSecurity, mosquittoSecurityConfig, mqtt } from '../../../src/transports/mqtt/index.js';
import { type Mosquitto, startMosquitto } from '../brokers/mosquitto.js';
import { freePort } from '../support/loopback.js';
import { createTestPki, issueClientCertificate, type TestPki } from './support/pki.js';

const DEVICE = 'gw-1';
const manifest = {
  modulesContent: {
    $edgeAgent: { 'properties.desired': { modules: { sensor: {}, filter: {} } } },
    $edgeHub: {
      'properties.desired': {
        schemaVersion: '1.1',
        routes: { r: 'FROM /messages/modules/sensor/outputs/out INTO BrokeredEndpoint("/modules/filter/inputs/in")' },
      },
    },
  },
};

let pki: TestPki;
let broker: Mosquitto;
let tlsUrl: string;
const open: TransportConnection[] = [];

beforeAll(async () => {
  pki = createTestPki();
  const port = await freePort();
  tlsUrl = `mqtts://127.0.0.1:${port}`;
  const plan = planAccess(readDeployment(manifest), DEVICE);
  broker = await startMosquitto({
    dynamicSecurity: {
      // No passwords: these users can log in only with a certificate.
      json: mosquittoDynamicSecurity(plan.principals, new Map()),
      config: (file) =>
        mosquittoSecurityConfig({
          dynamicSecurityFile: file,
          certificates: {
            port,
            host: '127.0.0.1',
            certFile: pki.serverCertFile,
            keyFile: pki.serverKeyFile,
            caFile: pki.caFile,
          },
        }),
    },
  });
});

afterAll(async () => {
  await Promise.all(open.map((c) => c.close().catch(() => undefined)));
  await broker?.stop();
  pki?.remove();
});

function transportWith(commonName: string | undefined) {
  const client = commonName === undefined ? undefined : issueClientCertificate(pki, commonName);
  return mqtt({
    url: tlsUrl,
    connectTimeoutInMs: 5_000,
    tls: { ca: pki.ca, ...(client === undefined ? {} : { cert: client.cert, key: client.key }) },
  });
}

describe('client certificates', () => {
  it('a module logs in by certificate with exactly its rights; one without a certificate or password is refused', async () => {
    const filter = await transportWith('gw-1/filter').connect({ clientId: 'gw-1/filter', identity: 'gw-1/filter' });
    open.push(filter);
    await filter.setRetained(
      `twin/${DEVICE}/filter/reported`,
      new TextEncoder().encode('{"version":1,"properties":{}}'),
    );
    const refused = (await filter
      .setRetained(`twin/${DEVICE}/sensor/reported`, new TextEncoder().encode('{}'))
      .catch((e: unknown) => e)) as EdgeKitError;
    expect(isEdgeKitError(refused, 'not-authorized')).toBe(true);
    const anonymous = (await mqtt({ url: broker.url, connectTimeoutInMs: 5_000 })
      .connect({ clientId: 'anonymous' })
      .catch((e: unknown) => e)) as EdgeKitError;
    expect(anonymous.code).toBe('connection-failed');
    expect(anonymous.details).toMatchObject({ reason: 'not-authorized' });
  });

  it('a certificate asking for another module’s client id gets its own: the other module stays connected', async () => {
    const sensor = await transportWith('gw-1/sensor').connect({ clientId: 'gw-1/sensor', identity: 'gw-1/sensor' });
    open.push(sensor);
    let sensorEnded = false;
    void sensor.closed.then(() => {
      sensorEnded = true;
    });
    const thief = await transportWith('gw-1/filter').connect({ clientId: 'gw-1/sensor', identity: 'gw-1/filter' });
    open.push(thief);
    // The thief is connected as gw-1/filter, not as the sensor: the sensor still works, under its own rights.
    await sensor.publish(`inputs/${DEVICE}/filter/in`, new TextEncoder().encode('still here'));
    expect(sensorEnded).toBe(false);
    // And the thief still has only the filter's rights.
    const refused = (await thief
      .publish(`inputs/${DEVICE}/filter/in`, new TextEncoder().encode('x'))
      .catch((e: unknown) => e)) as EdgeKitError;
    expect(isEdgeKitError(refused, 'not-authorized')).toBe(true);
  });
});
