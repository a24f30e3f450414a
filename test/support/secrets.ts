/**
 * Checks that an error shows no secret anywhere a person or a log could see it: its message, `String(error)`, its
 * `details`, every error of its `cause` chain (message, own properties, stack) and what `console.log` would print.
 */
import { inspect } from 'node:util';
import { expect } from 'vitest';

/** Everything of `error` that can end up on a screen or in a log, as one text. */
export function everythingShown(error: unknown): string {
  const parts: string[] = [inspect(error, { depth: Number.POSITIVE_INFINITY, showHidden: true })];
  let current: unknown = error;
  for (let depth = 0; current !== undefined && current !== null && depth < 10; depth++) {
    parts.push(String(current));
    if (typeof current === 'object') {
      const { message, stack, details, cause } = current as Record<string, unknown>;
      parts.push(String(message), String(stack), JSON.stringify(details) ?? '', JSON.stringify(current) ?? '');
      current = cause;
    } else current = undefined;
  }
  return parts.join('\n');
}

/** Fails, naming where, when any of `secrets` (or their percent-encoded forms) shows in {@link everythingShown}. */
export function expectNoSecret(error: unknown, secrets: readonly string[]): void {
  const shown = everythingShown(error);
  for (const secret of secrets) {
    for (const form of new Set([secret, encodeURIComponent(secret)])) {
      const at = shown.indexOf(form);
      expect(at, `${JSON.stringify(form)} shows in: …${shown.slice(Math.max(0, at - 80), at + 80)}…`).toBe(-1);
    }
  }
}
