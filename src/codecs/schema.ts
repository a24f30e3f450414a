/**
 * Standard Schema support: any zod / valibot / arktype (or hand-written) schema validates incoming bodies, desired
 * documents and method payloads. edgekit depends on none of those libraries, only on the spec's types.
 */
import type { StandardSchemaV1 } from '@standard-schema/spec';
import { EdgeKitError } from '../errors.js';

export type { StandardSchemaV1 };

/** A schema whose output type is `T`. */
export type Schema<T> = StandardSchemaV1<unknown, T>;

/** The output type of a schema. */
export type InferSchema<S> = S extends StandardSchemaV1<unknown, infer T> ? T : never;

const passThrough = {
  version: 1,
  vendor: 'edgekit',
  validate: (value: unknown) => ({ value }),
} as const;

/**
 * A schema that only states a type and checks nothing at run time. Use it where you trust the sender or have no
 * schema library.
 *
 * @example
 * ```ts
 * const Settings = defineModule({ desired: typed<{ threshold: number }>() });
 * ```
 */
export function typed<T>(): Schema<T> {
  return { '~standard': passThrough as StandardSchemaV1.Props<unknown, T> };
}

/** True if `value` looks like a Standard Schema. */
export function isSchema(value: unknown): value is Schema<unknown> {
  if (typeof value !== 'object' && typeof value !== 'function') return false;
  if (value === null) return false;
  const std = (value as { '~standard'?: { validate?: unknown; version?: unknown } })['~standard'];
  return typeof std === 'object' && std !== null && typeof std.validate === 'function' && std.version === 1;
}

/** True when the schema is edgekit's no-op `typed<T>()`: validation can be skipped entirely. */
export function isPassThrough(schema: Schema<unknown>): boolean {
  return schema['~standard'] === (passThrough as unknown);
}

function describeIssues(issues: ReadonlyArray<StandardSchemaV1.Issue>): string {
  return issues
    .slice(0, 5)
    .map((issue) => {
      const path = (issue.path ?? []).map((p) => String(typeof p === 'object' ? p.key : p)).join('.');
      return path ? `${path}: ${issue.message}` : issue.message;
    })
    .join('; ');
}

/**
 * Validates `value`; resolves to the schema's output or throws `EdgeKitError('validation-failed')` naming `what`
 * and the issues. Synchronous schemas are answered without an extra promise.
 */
export function validate<T>(schema: Schema<T>, value: unknown, what: string): T | Promise<T> {
  if (isPassThrough(schema)) return value as T;
  const result = schema['~standard'].validate(value);
  if (result instanceof Promise) return result.then((r) => unwrap(r, what));
  return unwrap(result, what);
}

function unwrap<T>(result: StandardSchemaV1.Result<T>, what: string): T {
  if (result.issues) {
    throw new EdgeKitError('validation-failed', `${what} failed its schema: ${describeIssues(result.issues)}`, {
      details: { issues: result.issues },
    });
  }
  return result.value;
}
