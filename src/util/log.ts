// One winston logger for the whole process: one JSON line per event, constant message,
// variables as keys. BTX_LOG_LEVEL and BTX_LOG_FORMAT (json|text) choose level and shape.
import winston from 'winston';

const level = process.env.BTX_LOG_LEVEL ?? 'info';
const format =
  process.env.BTX_LOG_FORMAT === 'text'
    ? winston.format.combine(winston.format.timestamp(), winston.format.simple())
    : winston.format.combine(winston.format.timestamp(), winston.format.json());

export const log = winston.createLogger({
  level,
  format,
  // stderr keeps stdout free for command output (tables, kubeconfig paths, termination data).
  transports: [
    new winston.transports.Console({
      stderrLevels: ['error', 'warn', 'info', 'http', 'verbose', 'debug', 'silly'],
    }),
  ],
});

export type Logger = winston.Logger;

/** The fields worth logging from any thrown value (client-node errors carry `code` and `body.reason`). */
export function errorFields(err: unknown): Record<string, unknown> {
  if (err instanceof Error) {
    const e = err as Error & { code?: unknown; body?: { reason?: unknown; message?: unknown } };
    return { error: e.message, code: e.code, reason: e.body?.reason };
  }
  return { error: String(err) };
}
