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

/** What a log line carries about a thrown value: never response headers or bodies. */
export interface ErrorFields {
  /** The error's own message (for an HTTP error its first line only: the rest is body and headers). */
  error: string;
  /** HTTP status code (client-node's ApiException) or a system code (ECONNREFUSED). */
  code?: number | string;
  /** The Kubernetes Status reason (AlreadyExists, Invalid, Unauthorized, ...). */
  reason?: string;
  /**
   * The Kubernetes Status message: what the API server said was wrong. (Not `message`: winston
   * appends a `message` key to the line's constant message.)
   */
  statusMessage?: string;
}

function statusOf(body: unknown): { reason?: unknown; message?: unknown } | undefined {
  if (typeof body === 'string') {
    try {
      const parsed: unknown = JSON.parse(body);
      return typeof parsed === 'object' && parsed !== null ? parsed : undefined;
    } catch {
      return undefined; // not JSON: no Status
    }
  }
  return typeof body === 'object' && body !== null ? body : undefined;
}

/**
 * The fields worth logging from any thrown value: its message, the HTTP or system code, and the
 * Kubernetes Status reason and message of a client-node ApiException (whose own message holds the
 * whole body and every response header). An error wrapping another (`cause`, as the operator's
 * "create x failed") takes code, reason and message from the cause.
 */
export function errorFields(err: unknown): ErrorFields {
  if (!(err instanceof Error)) return { error: String(err) };
  const e = err as Error & { code?: unknown; body?: unknown; headers?: unknown };
  const http = 'body' in e || 'headers' in e;
  const fields: ErrorFields = { error: http ? (e.message.split('\n')[0] ?? '') : e.message };
  const source = e.code === undefined && e.cause instanceof Error ? (e.cause as typeof e) : e;
  if (typeof source.code === 'number' || typeof source.code === 'string') fields.code = source.code;
  const status = statusOf(source.body);
  if (typeof status?.reason === 'string') fields.reason = status.reason;
  if (typeof status?.message === 'string') fields.statusMessage = status.message;
  if (source !== e && fields.statusMessage === undefined) {
    const cause = errorFields(source);
    if (cause.error) fields.statusMessage = cause.error;
  }
  return fields;
}
