// What to log and branch on from a client-node error: the HTTP status and the Status reason
// (ApiException carries the body as a JSON string, and a message with every header in it).
export function statusCode(err: unknown): number | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}

export function apiErrorFields(err: unknown): { error: string; code?: number | string; reason?: string } {
  const e = err as { code?: unknown; body?: unknown } | null;
  let reason: string | undefined;
  if (typeof e?.body === 'string') {
    try {
      const parsed = JSON.parse(e.body) as { reason?: unknown };
      if (typeof parsed.reason === 'string') reason = parsed.reason;
    } catch {
      // not JSON: no reason
    }
  } else if (typeof e?.body === 'object' && e.body !== null) {
    const r = (e.body as { reason?: unknown }).reason;
    if (typeof r === 'string') reason = r;
  }
  const error = (err instanceof Error ? err.message : String(err)).split('\n')[0] ?? '';
  const code = typeof e?.code === 'number' || typeof e?.code === 'string' ? e.code : undefined;
  return { error, ...(code !== undefined ? { code } : {}), ...(reason ? { reason } : {}) };
}
