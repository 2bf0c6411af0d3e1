/** Structured JSON logs (pino) behind the small `log(level, msg, fields)` shape kiln's modules take. */
import { pino } from 'pino';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type Log = (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;

/** Field names whose values never reach a log line. */
const REDACT = ['token', 'password', 'authorization', 'Authorization', '*.token', '*.password', '*.authorization', 'headers.authorization'];

export function newLogger(level: LogLevel = 'info', name = 'kiln'): Log {
  const logger = pino({ name, level, redact: { paths: REDACT, censor: '[redacted]' } }, pino.destination(2));
  return (lvl, msg, fields) => logger[lvl](fields ?? {}, msg);
}
