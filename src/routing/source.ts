/**
 * Matching of a route's FROM path against a message source, as the IoT Edge engine does it: both are normalised to
 * end in exactly one `/` (a route's trailing `*`s are dropped first), and the route matches when the message source
 * starts with it, ignoring case. So matching is segment-wise by prefix: `/messages/modules/m1` matches every output of
 * module `m1` but not module `m10`, `/*` matches everything, and a `*` anywhere but at the end is literal.
 */
import { foldCase } from './text.js';

function withSingleTrailingSlash(value: string): string {
  return `${value.trim().replace(/\/+$/, '')}/`;
}

/**
 * A route FROM path as the engine compares it.
 *
 * @example
 * ```ts
 * normalizeSourcePattern('/messages/modules/m1/*') // '/messages/modules/m1/'
 * ```
 */
export function normalizeSourcePattern(pattern: string): string {
  return withSingleTrailingSlash(pattern.trim().replace(/\*+$/, ''));
}

/**
 * A message source as the engine compares it.
 *
 * @example
 * ```ts
 * normalizeMessageSource('/messages/modules/m1/outputs/o1') // '/messages/modules/m1/outputs/o1/'
 * ```
 */
export function normalizeMessageSource(source: string): string {
  return withSingleTrailingSlash(source);
}

/** The case-folded form of a normalised pattern or source, compared with `startsWith`. */
export function sourceKey(normalized: string): string {
  return foldCase(normalized);
}

const recentSources = new Map<string, string>();

/** `sourceKey(normalizeMessageSource(source))`, remembered for the few hundred sources a device sees. */
export function messageSourceKey(source: string): string {
  let key = recentSources.get(source);
  if (key === undefined) {
    key = sourceKey(normalizeMessageSource(source));
    if (recentSources.size >= 512) recentSources.clear();
    recentSources.set(source, key);
  }
  return key;
}

/**
 * Does a route whose FROM path is `pattern` accept messages from `source`?
 *
 * @example
 * ```ts
 * matchSource('/messages/modules/sensor/*', '/messages/modules/sensor/outputs/temp')        // true
 * matchSource('/messages/modules/sensor/outputs/temp', '/messages/modules/sensor/outputs/temp0') // false
 * matchSource('/messages/modules', '/messages')                                              // false: device telemetry
 * ```
 */
export function matchSource(pattern: string, source: string): boolean {
  if (typeof pattern !== 'string') throw new TypeError(`pattern must be a string, got ${typeof pattern}`);
  if (typeof source !== 'string') throw new TypeError(`source must be a string, got ${typeof source}`);
  return sourceKey(normalizeMessageSource(source)).startsWith(sourceKey(normalizeSourcePattern(pattern)));
}
