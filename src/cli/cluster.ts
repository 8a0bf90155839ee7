// Placeholder until the 'cluster' command lands (see the issues); it says so instead of pretending.
export async function run(_argv: string[]): Promise<number> {
  process.stderr.write('btx cluster: not implemented yet\n');
  return 1;
}
