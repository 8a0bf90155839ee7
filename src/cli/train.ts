// Placeholder until the 'train' command lands (see the issues); it says so instead of pretending.
export async function run(_argv: string[]): Promise<number> {
  process.stderr.write('btx train: not implemented yet\n');
  return 1;
}
