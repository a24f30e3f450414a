/**
 * The demo's Azure part: examples/azure-module — an unmodified Azure IoT Edge module on Microsoft's device SDK —
 * joins the pipeline through edgekit/hub, taking the filter's alerts and sending summaries upstream. It runs only
 * where the example and the SDK are installed (a clone of the repository); the published command skips it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startHub } from '../../hub/index.js';
import { createCertificateAuthority, issueServerCertificate } from '../../service/certificates.js';
import type { Transport } from '../../transport.js';

/** The Azure sample's module id. */
export const AZURE_SAMPLE = 'azure-alert-counter';

/** examples/azure-module/index.js, when it and the Azure SDK it needs are both there. */
export function azureSampleScript(): string | undefined {
  // From src/cli/commands (run by tsx) or dist/cli (the built command run inside the repository).
  for (const relative of ['../../../examples/azure-module/index.js', '../../examples/azure-module/index.js']) {
    const script = fileURLToPath(new URL(relative, import.meta.url));
    if (!existsSync(script)) continue;
    try {
      const require = createRequire(script);
      require.resolve('azure-iot-device');
      require.resolve('azure-iot-device-mqtt');
      require.resolve('aedes');
      return script;
    } catch {
      return undefined;
    }
  }
  return undefined;
}

interface Manifest {
  readonly modulesContent: Record<string, { 'properties.desired': Record<string, unknown> }>;
}

/** The demo manifest with the Azure sample deployed: the filter's alerts go to it, its summaries upstream. */
export function withAzureSample<M>(manifest: M): M {
  const content = (manifest as unknown as Manifest).modulesContent;
  const agent = content.$edgeAgent?.['properties.desired'] ?? {};
  const hub = content.$edgeHub?.['properties.desired'] ?? {};
  return {
    ...manifest,
    modulesContent: {
      ...content,
      $edgeAgent: {
        'properties.desired': {
          ...agent,
          modules: {
            ...(agent.modules as object),
            [AZURE_SAMPLE]: {
              version: '1.0',
              type: 'docker',
              status: 'running',
              restartPolicy: 'always',
              settings: { image: 'example.azurecr.io/azure-alert-counter:1.0.0' },
            },
          },
        },
      },
      $edgeHub: {
        'properties.desired': {
          ...hub,
          routes: {
            ...(hub.routes as object),
            filterToAzure: `FROM /messages/modules/filter/outputs/output1 INTO BrokeredEndpoint("/modules/${AZURE_SAMPLE}/inputs/alerts")`,
            azureToUpstream: `FROM /messages/modules/${AZURE_SAMPLE}/outputs/summary INTO $upstream`,
          },
        },
      },
      [AZURE_SAMPLE]: { 'properties.desired': { SummaryEvery: 3 } },
    },
  } as M;
}

/** A running Azure sample: the hub and the module's process. */
export interface AzureSample {
  stop(): Promise<void>;
}

/**
 * Starts a hub for `deviceId` (development TLS made on the spot, free loopback ports) and the Azure sample as a child
 * process configured the way IoT Edge configures a module for local debugging; its output goes to `log`.
 */
export async function startAzureSample(options: {
  readonly script: string;
  readonly deviceId: string;
  readonly transport: (moduleId: string) => Promise<Transport>;
  log(who: string, text: string): void;
}): Promise<AzureSample> {
  const { script, deviceId, log } = options;
  const folder = mkdtempSync(path.join(tmpdir(), 'edgekit-demo-hub-'));
  const ca = createCertificateAuthority({ commonName: 'edgekit demo hub CA' });
  const server = issueServerCertificate({ ca, dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  const caFile = path.join(folder, 'ca.pem');
  writeFileSync(caFile, ca.cert);
  const key = randomBytes(32).toString('base64');
  let child: ChildProcess | undefined;
  const hub = await startHub({
    deviceId,
    transport: options.transport,
    keys: { [AZURE_SAMPLE]: key },
    tls: { cert: server.cert, key: server.key, ca: ca.cert },
    mqttPort: 0,
    httpsPort: 0,
    onError: (error) => log('hub', `${error.code}: ${error.message}`),
  });
  try {
    child = spawn(process.execPath, [script], {
      env: {
        ...process.env,
        EdgeHubConnectionString: `HostName=edgekit.local;GatewayHostName=localhost:${hub.mqttPort};DeviceId=${deviceId};ModuleId=${AZURE_SAMPLE};SharedAccessKey=${key}`,
        EdgeModuleCACertificateFile: caFile,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (error) {
    await hub.close();
    rmSync(folder, { recursive: true, force: true });
    throw error;
  }
  const prefix = `[${AZURE_SAMPLE}] `;
  const lines = (stream: NodeJS.ReadableStream | null) => {
    let partial = '';
    stream?.setEncoding('utf8');
    stream?.on('data', (chunk: string) => {
      const parts = (partial + chunk).split('\n');
      partial = parts.pop() ?? '';
      for (const line of parts) if (line) log('azure', line.startsWith(prefix) ? line.slice(prefix.length) : line);
    });
  };
  lines(child.stdout);
  lines(child.stderr);
  const exited = new Promise<void>((resolve) => {
    child?.once('exit', () => resolve());
    // A failed spawn (no process) ends it too.
    child?.once('error', (error) => {
      log('azure', `could not run ${script}: ${error.message}`);
      resolve();
    });
  });
  return {
    async stop() {
      if (child?.exitCode === null && child.signalCode === null && child.pid !== undefined) {
        process.kill(child.pid, 'SIGTERM');
        const timer = setTimeout(() => child?.pid !== undefined && process.kill(child.pid, 'SIGKILL'), 5_000);
        await exited;
        clearTimeout(timer);
      }
      await hub.close();
      rmSync(folder, { recursive: true, force: true });
    },
  };
}
