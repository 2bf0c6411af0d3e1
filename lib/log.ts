/**
 * Logs behind the small `log(level, msg, fields)` shape kiln's modules take, on pino.
 *
 * Two formats (`--log-format`): `json`, one JSON object per line with an ISO 8601
 * `time` and the level's name (`"level":"info"`), for log collectors; `console`,
 * pino-pretty's one line per entry with the local time and colour, for a person
 * at a terminal. The default is console when stderr is a terminal, json otherwise
 * (a pod's stderr never is).
 *
 * Lines logged while a reconcile runs carry its `kind`, `namespace`, `name` and
 * a `reconcileID` (a UUID, as controller-runtime logs), from withLogFields; the
 * logger's own name (kiln-controller, kiln-agent) is `logger`.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import { hostname } from 'node:os';
import { pino, type DestinationStream, type LoggerOptions } from 'pino';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFormat = 'json' | 'console';
export const LOG_FORMATS: readonly LogFormat[] = ['console', 'json'];
export type Log = (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;

/** Field names whose values never reach a log line. */
const REDACT = ['token', 'password', 'authorization', 'Authorization', '*.token', '*.password', '*.authorization', 'headers.authorization'];

const context = new AsyncLocalStorage<Record<string, unknown>>();
const failedWith = new WeakMap<object, Record<string, unknown>>();

/** console when the stream is a terminal, json otherwise. */
export function defaultLogFormat(stream: { isTTY?: boolean } = process.stderr): LogFormat {
  return stream.isTTY ? 'console' : 'json';
}

/** pino's options for a format (exported for tests). */
export function loggerOptions(level: LogLevel, name: string, format: LogFormat): LoggerOptions {
  return {
    // The logger's name goes under "logger" (as controller-runtime's does): "name" and
    // "namespace" are the reconciled resource's.
    base: { pid: process.pid, hostname: hostname(), logger: name },
    level,
    redact: { paths: REDACT, censor: '[redacted]' },
    // Fields of the reconcile this line is logged in, if any (the line's own fields win).
    mixin: () => context.getStore() ?? {},
    ...(format === 'json' ? { timestamp: pino.stdTimeFunctions.isoTime, formatters: { level: (label: string) => ({ level: label }) } } : {}),
  };
}

function consoleStream(colorize: boolean): DestinationStream {
  // Loaded only for the console format: a Deployment's json logs never load it.
  const require = createRequire(import.meta.url);
  const pretty = require('pino-pretty') as (o: Record<string, unknown>) => DestinationStream;
  return pretty({ destination: 2, sync: true, colorize, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,logger', singleLine: true });
}

export function newLogger(level: LogLevel = 'info', name = 'kiln', format: LogFormat = defaultLogFormat()): Log {
  const destination = format === 'console' ? consoleStream(Boolean(process.stderr.isTTY)) : pino.destination(2);
  const logger = pino(loggerOptions(level, name, format), destination);
  return (lvl, msg, fields) => logger[lvl](fields ?? {}, msg);
}

/** The fields of one reconcile of a work-queue key (`Kind/namespace/name`), with a fresh reconcileID. */
export function reconcileFields(key: string): Record<string, unknown> {
  const [kind, namespace, name] = key.split('/');
  return { kind, namespace, name, reconcileID: randomUUID() };
}

/**
 * Runs `fn` with `fields` on every line newLogger's loggers log meanwhile (in
 * `fn` and whatever it awaits). If `fn` fails, logFieldsOf(error) gives them
 * back, for the line that reports the failure outside.
 */
export async function withLogFields<T>(fields: Record<string, unknown>, fn: () => Promise<T>): Promise<T> {
  try {
    return await context.run(fields, fn);
  } catch (err) {
    if (typeof err === 'object' && err !== null && !failedWith.has(err)) failedWith.set(err, fields);
    throw err;
  }
}

/** The fields of the withLogFields call an error escaped from ({} if none). */
export function logFieldsOf(err: unknown): Record<string, unknown> {
  return (typeof err === 'object' && err !== null && failedWith.get(err)) || {};
}
