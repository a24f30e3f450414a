/**
 * The MQTT topics of edgeHub's module protocol (what Microsoft's azure-iot-device SDK speaks): parsing what a module
 * publishes and subscribes to, and formatting what the hub sends back. Parsers never throw, as their input comes
 * from the wire; they return `undefined` for anything edgeHub would not accept.
 */

/** A module's output message, as read from its publish topic `devices/{d}/modules/{m}/messages/events/{props}/`. */
export interface AzureOutput {
  readonly deviceId: string;
  readonly moduleId: string;
  /** The output name (`$.on`); absent for `sendEvent`, which names no output. */
  readonly output?: string;
  /** Application properties, decoded. System (`$.`-prefixed) names never appear here. */
  readonly properties: Record<string, string>;
  /** `$.mid` */
  readonly messageId?: string;
  /** `$.cid` */
  readonly correlationId?: string;
  /** `$.ct` */
  readonly contentType?: string;
  /** `$.ce` */
  readonly contentEncoding?: string;
}

/** What the hub puts in the property bag of an input topic, besides the input name. */
export interface AzureInputMessage {
  /** Application properties. Names starting with `$.` are left out: they would pose as system properties. */
  readonly properties: Record<string, string>;
  readonly messageId?: string;
  readonly correlationId?: string;
  readonly contentType?: string;
  readonly contentEncoding?: string;
  /** The sender's device (`$.cdid`). */
  readonly sourceDeviceId?: string;
  /** The sender's module (`$.cmid`). */
  readonly sourceModuleId?: string;
}

type OutputSystemField = 'output' | 'messageId' | 'correlationId' | 'contentType' | 'contentEncoding';

// System property names in an output's bag that the gateway keeps; every other `$.` name (`$.uid`, `$.to`, `$.exp`,
// `$.ifid`, `$.sub`, …) is dropped, never taken for an application property.
const OUTPUT_SYSTEM: ReadonlyMap<string, OutputSystemField> = new Map([
  ['$.on', 'output'],
  ['$.mid', 'messageId'],
  ['$.cid', 'correlationId'],
  ['$.ct', 'contentType'],
  ['$.ce', 'contentEncoding'],
]);

// The order system properties follow application ones in an input topic.
const INPUT_SYSTEM: readonly (readonly [string, Exclude<keyof AzureInputMessage, 'properties'>])[] = [
  ['$.mid', 'messageId'],
  ['$.cid', 'correlationId'],
  ['$.ct', 'contentType'],
  ['$.ce', 'contentEncoding'],
  ['$.cdid', 'sourceDeviceId'],
  ['$.cmid', 'sourceModuleId'],
];

const SYSTEM_PREFIX = '$.';
const TWIN_GET = '$iothub/twin/GET/?';
const REPORTED_PATCH = '$iothub/twin/PATCH/properties/reported/?';
const METHOD_RESPONSE = /^\$iothub\/methods\/res\/(\d{3})\/\?(.*)$/s;
const TWIN_RESPONSE_SUBSCRIPTION = '$iothub/twin/res/#';
const DESIRED_SUBSCRIPTION = '$iothub/twin/PATCH/properties/desired/#';
const METHOD_SUBSCRIPTION = '$iothub/methods/POST/#';

/** Decodes one query-string component (`+` is a space); `undefined` for bad percent-encoding. */
function decodeComponent(text: string): string | undefined {
  try {
    return decodeURIComponent(text.replaceAll('+', ' '));
  } catch {
    return undefined;
  }
}

/** The decoded `name=value` pairs of a query string, in order; `undefined` if any of them does not decode. */
function parseQuery(query: string): [string, string][] | undefined {
  const pairs: [string, string][] = [];
  for (const part of query.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const name = decodeComponent(eq < 0 ? part : part.slice(0, eq));
    const value = decodeComponent(eq < 0 ? '' : part.slice(eq + 1));
    if (name === undefined || value === undefined) return undefined;
    pairs.push([name, value]);
  }
  return pairs;
}

/**
 * Parses the topic a module publishes an output (or a plain `sendEvent`) to. edgeHub accepts four shapes:
 * `devices/{d}/modules/{m}/messages/events` with nothing, `/`, `/{props}` or `/{props}/` after it. `{props}` is a
 * url-encoded query string: `$.on` (output), `$.mid`, `$.cid`, `$.ct` and `$.ce` become fields, other `$.` names are
 * dropped, and the rest are application properties (the last of a repeated name wins).
 *
 * @returns the message's addressing and properties, or `undefined` for any other topic or bad percent-encoding.
 * @example
 * ```ts
 * parseOutputTopic('devices/dev1/modules/modA/messages/events/%24.on=out1&alert=true/');
 * // { deviceId: 'dev1', moduleId: 'modA', output: 'out1', properties: { alert: 'true' } }
 * ```
 */
export function parseOutputTopic(topic: string): AzureOutput | undefined {
  const levels = topic.split('/');
  if (levels.length < 6 || levels.length > 8) return undefined;
  const [devices, deviceId, modules, moduleId, messages, events, props = '', rest] = levels;
  if (devices !== 'devices' || modules !== 'modules' || messages !== 'messages' || events !== 'events')
    return undefined;
  if (!deviceId || !moduleId) return undefined;
  // `…/events//` would be an empty property level followed by a slash: not one of the four shapes.
  if (rest !== undefined && (rest !== '' || props === '')) return undefined;

  const pairs = parseQuery(props);
  if (pairs === undefined) return undefined;
  const system: Partial<Record<OutputSystemField, string>> = {};
  const properties = new Map<string, string>();
  for (const [name, value] of pairs) {
    const field = OUTPUT_SYSTEM.get(name);
    if (field !== undefined) system[field] = value;
    else if (!name.startsWith(SYSTEM_PREFIX)) properties.set(name, value);
  }
  // fromEntries defines own properties, so a name such as `__proto__` stays a property.
  return { deviceId, moduleId, ...system, properties: Object.fromEntries(properties) };
}

/**
 * The topic the hub publishes an input message on: `devices/{d}/modules/{m}/inputs/{input}/{props}`, where props are
 * `encodeURIComponent(name)=encodeURIComponent(value)` joined by `&` — application properties first, then `$.mid`,
 * `$.cid`, `$.ct`, `$.ce`, `$.cdid`, `$.cmid` when given. The level after the input name is always there (empty when
 * there are no properties): the Azure SDK silently drops `…/inputs/{input}` without it.
 *
 * The ids and the input name go in as they are: they must be valid topic levels (edgekit names are).
 *
 * @example
 * ```ts
 * formatInputTopic('dev1', 'modB', 'in1', { properties: { temp: '21' }, sourceDeviceId: 'dev1', sourceModuleId: 'modA' });
 * // 'devices/dev1/modules/modB/inputs/in1/temp=21&%24.cdid=dev1&%24.cmid=modA'
 * formatInputTopic('dev1', 'modB', 'in1', { properties: {} }); // 'devices/dev1/modules/modB/inputs/in1/'
 * ```
 */
export function formatInputTopic(
  deviceId: string,
  moduleId: string,
  input: string,
  message: AzureInputMessage,
): string {
  const pairs: string[] = [];
  for (const [name, value] of Object.entries(message.properties)) {
    if (!name.startsWith(SYSTEM_PREFIX)) pairs.push(`${encodeURIComponent(name)}=${encodeURIComponent(value)}`);
  }
  for (const [name, field] of INPUT_SYSTEM) {
    const value = message[field];
    if (value !== undefined) pairs.push(`${encodeURIComponent(name)}=${encodeURIComponent(value)}`);
  }
  return `devices/${deviceId}/modules/${moduleId}/inputs/${input}/${pairs.join('&')}`;
}

/**
 * The `$rid` of a query string that follows `prefix` in `topic`: present once and non-empty, and free of `/ + #` so
 * that echoing it into a response topic stays one valid level. Kept as sent, so the client recognises its answer.
 */
function ridAfter(topic: string, prefix: string): string | undefined {
  if (!topic.startsWith(prefix)) return undefined;
  return ridOf(topic.slice(prefix.length));
}

function ridOf(query: string): string | undefined {
  let rid: string | undefined;
  for (const part of query.split('&')) {
    if (!part.startsWith('$rid=')) continue;
    if (rid !== undefined) return undefined;
    rid = part.slice('$rid='.length);
  }
  if (!rid || /[/+#\0]/.test(rid)) return undefined;
  return rid;
}

/**
 * Parses a twin request, `$iothub/twin/GET/?$rid={rid}` (other `&name=value` parameters allowed).
 *
 * @returns the request id, or `undefined` if the topic is no twin request or has no usable `$rid`.
 * @example
 * ```ts
 * parseTwinGetTopic('$iothub/twin/GET/?$rid=42'); // { rid: '42' }
 * ```
 */
export function parseTwinGetTopic(topic: string): { rid: string } | undefined {
  const rid = ridAfter(topic, TWIN_GET);
  return rid === undefined ? undefined : { rid };
}

/**
 * Parses a reported-properties patch, `$iothub/twin/PATCH/properties/reported/?$rid={rid}` (other parameters such
 * as `&$version=` allowed).
 *
 * @returns the request id, or `undefined` if the topic is no reported patch or has no usable `$rid`.
 * @example
 * ```ts
 * parseReportedPatchTopic('$iothub/twin/PATCH/properties/reported/?$rid=7&$version=3'); // { rid: '7' }
 * ```
 */
export function parseReportedPatchTopic(topic: string): { rid: string } | undefined {
  const rid = ridAfter(topic, REPORTED_PATCH);
  return rid === undefined ? undefined : { rid };
}

/**
 * The topic answering a twin request or reported patch: `$iothub/twin/res/{status}/?$rid={rid}`.
 *
 * @example
 * ```ts
 * twinResponseTopic(204, '7'); // '$iothub/twin/res/204/?$rid=7'
 * ```
 */
export function twinResponseTopic(status: number, rid: string): string {
  return `$iothub/twin/res/${status}/?$rid=${rid}`;
}

/**
 * The topic of a desired-properties patch: `$iothub/twin/PATCH/properties/desired/?$version={version}`.
 *
 * @example
 * ```ts
 * desiredPatchTopic(5); // '$iothub/twin/PATCH/properties/desired/?$version=5'
 * ```
 */
export function desiredPatchTopic(version: number): string {
  return `$iothub/twin/PATCH/properties/desired/?$version=${version}`;
}

/**
 * The topic of a direct-method call to a module: `$iothub/methods/POST/{method}/?$rid={rid}`.
 *
 * @example
 * ```ts
 * methodRequestTopic('reboot', '1'); // '$iothub/methods/POST/reboot/?$rid=1'
 * ```
 */
export function methodRequestTopic(method: string, rid: string): string {
  return `$iothub/methods/POST/${method}/?$rid=${rid}`;
}

/**
 * Parses a module's answer to a method call, `$iothub/methods/res/{status}/?$rid={rid}`; the status must be a
 * three-digit integer.
 *
 * @returns the status and request id, or `undefined` for any other topic.
 * @example
 * ```ts
 * parseMethodResponseTopic('$iothub/methods/res/200/?$rid=1'); // { status: 200, rid: '1' }
 * ```
 */
export function parseMethodResponseTopic(topic: string): { status: number; rid: string } | undefined {
  const match = METHOD_RESPONSE.exec(topic);
  if (!match) return undefined;
  const rid = ridOf(match[2]!);
  return rid === undefined ? undefined : { status: Number(match[1]), rid };
}

/**
 * True for the topic filter `devices/{deviceId}/modules/{moduleId}/inputs/#`, the subscription to that module's
 * inputs.
 */
export function isInputSubscription(topic: string, deviceId: string, moduleId: string): boolean {
  return topic === `devices/${deviceId}/modules/${moduleId}/inputs/#`;
}

/** True for the topic filter `$iothub/twin/PATCH/properties/desired/#`, the subscription to desired patches. */
export function isDesiredSubscription(topic: string): boolean {
  return topic === DESIRED_SUBSCRIPTION;
}

/** True for the topic filter `$iothub/methods/POST/#`, the subscription to direct-method calls. */
export function isMethodSubscription(topic: string): boolean {
  return topic === METHOD_SUBSCRIPTION;
}

/**
 * Whether the module `{deviceId}/{moduleId}` may subscribe to `topic`: only the four exact filters edgeHub knows —
 * its own inputs, twin responses, desired patches and method calls. Any other filter (another module's inputs, a
 * wider wildcard, a different spelling) is refused.
 *
 * @example
 * ```ts
 * subscriptionAllowed('$iothub/twin/res/#', 'dev1', 'modA'); // true
 * subscriptionAllowed('devices/dev1/modules/modB/inputs/#', 'dev1', 'modA'); // false
 * ```
 */
export function subscriptionAllowed(topic: string, deviceId: string, moduleId: string): boolean {
  return (
    isInputSubscription(topic, deviceId, moduleId) ||
    topic === TWIN_RESPONSE_SUBSCRIPTION ||
    isDesiredSubscription(topic) ||
    isMethodSubscription(topic)
  );
}
