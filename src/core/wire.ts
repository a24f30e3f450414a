/**
 * JSON forms of the retained and request/reply values the core exchanges besides messages: presence, route tables,
 * method requests and responses. Specified in docs/protocol.md. Decoders are strict and throw `decode-failed`.
 */
import { EdgeKitError } from '../errors.js';
import type { RouteSpec } from '../routing/index.js';
import { SDK_VERSION } from '../version.js';

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

export const toJsonBytes = (value: unknown): Uint8Array => encoder.encode(JSON.stringify(value));

export function fromJsonBytes(bytes: Uint8Array, what: string): unknown {
  try {
    return JSON.parse(decoder.decode(bytes));
  } catch (error) {
    throw new EdgeKitError('decode-failed', `${what} is not valid UTF-8 JSON`, { cause: error });
  }
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A module's presence as retained at `presence/<device>/<module>`. */
export interface Presence {
  readonly state: 'online' | 'offline';
  /** Epoch ms of the change, when the writer knew it (a broker-written last will has none). */
  readonly since?: number;
  /** `edgekit/<version>` of the client that wrote it. */
  readonly sdk: string;
  /** Why it went offline: `closed` (graceful) or `connection-lost` (last will). */
  readonly reason?: 'closed' | 'connection-lost';
  /** On a last will: epoch ms when the lost connection was made (the broker writes the will without a time). */
  readonly connectedAt?: number;
}

export const presenceOnline = (now: number): Presence => ({
  state: 'online',
  since: now,
  sdk: `edgekit/${SDK_VERSION}`,
});
export const presenceClosed = (now: number): Presence => ({
  state: 'offline',
  since: now,
  sdk: `edgekit/${SDK_VERSION}`,
  reason: 'closed',
});
/** The last will of a connection made at `connectedAt`. */
export const presenceLost = (connectedAt: number): Presence => ({
  state: 'offline',
  sdk: `edgekit/${SDK_VERSION}`,
  reason: 'connection-lost',
  connectedAt,
});

/** The deployment record retained at `deployment/<device>`: what the last applied manifest deployed. */
export interface DeploymentRecord {
  readonly modules: readonly string[];
  /** Epoch ms. */
  readonly appliedAt: number;
}

export function decodeDeploymentRecord(bytes: Uint8Array | undefined): DeploymentRecord | undefined {
  if (bytes === undefined || bytes.length === 0) return undefined;
  const v = fromJsonBytes(bytes, 'deployment record');
  if (!isRecord(v) || !Array.isArray(v.modules) || !v.modules.every((m) => typeof m === 'string')) {
    throw new EdgeKitError('decode-failed', 'deployment record is not { modules: [string…], appliedAt }');
  }
  return { modules: v.modules as string[], appliedAt: typeof v.appliedAt === 'number' ? v.appliedAt : 0 };
}

export function decodePresence(bytes: Uint8Array | undefined): Presence | undefined {
  if (bytes === undefined || bytes.length === 0) return undefined;
  const v = fromJsonBytes(bytes, 'presence');
  if (!isRecord(v) || (v.state !== 'online' && v.state !== 'offline')) {
    throw new EdgeKitError('decode-failed', 'presence is not { state: "online" | "offline", … }');
  }
  return v as unknown as Presence;
}

/** The route table retained at `routes/<device>`. */
export interface RouteTableDocument {
  readonly routes: Readonly<Record<string, RouteSpec>>;
  /** TTL of messages whose route sets none (0 = none); IoT Edge's storeAndForwardConfiguration. Default 7200. */
  readonly defaultTimeToLiveSecs?: number;
}

export function decodeRouteTable(bytes: Uint8Array | undefined): RouteTableDocument {
  if (bytes === undefined || bytes.length === 0) return { routes: {} };
  const v = fromJsonBytes(bytes, 'route table');
  if (!isRecord(v) || !isRecord(v.routes))
    throw new EdgeKitError('decode-failed', 'route table is not { routes: {…} }');
  return v as unknown as RouteTableDocument;
}

/** A direct-method request on `methods/<device>/<module>`. */
export interface MethodRequestWire {
  readonly method: string;
  readonly payload: unknown;
  /** The caller's whole budget; the server's deadline is its arrival time plus this. */
  readonly timeoutInMs: number;
  readonly callerDeviceId?: string;
  readonly callerModuleId?: string;
}

export interface MethodResponseWire {
  readonly status: number;
  readonly payload: unknown;
}

export function decodeMethodRequest(bytes: Uint8Array): MethodRequestWire {
  const v = fromJsonBytes(bytes, 'method request');
  if (!isRecord(v) || typeof v.method !== 'string' || typeof v.timeoutInMs !== 'number' || !(v.timeoutInMs > 0)) {
    throw new EdgeKitError('decode-failed', 'method request is not { method, payload, timeoutInMs }');
  }
  return v as unknown as MethodRequestWire;
}

export function decodeMethodResponse(bytes: Uint8Array): MethodResponseWire {
  const v = fromJsonBytes(bytes, 'method response');
  if (!isRecord(v) || typeof v.status !== 'number' || !Number.isInteger(v.status)) {
    throw new EdgeKitError('decode-failed', 'method response is not { status, payload }');
  }
  return { status: v.status, payload: v.payload ?? null };
}
