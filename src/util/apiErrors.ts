// What to branch on from a client-node error: the HTTP status code. (What to log from one is
// errorFields in log.ts.)
export function statusCode(err: unknown): number | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'number' ? code : undefined;
}
