// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/**
 * The layer rules (docs/architecture.md): `cli` composes; `operator`, `trainer` and `cluster` never
 * import each other; `api` imports nothing of ours; `cluster` is a plain Kubernetes subset that knows
 * nothing of BTX (no `api`); `util` is shared below all of them. Imports are relative, so a folder's
 * files at each depth get the pattern for that depth (`../x/` from src/cluster/a.ts, `../../x/`
 * from src/cluster/kubelet/b.ts): a nested folder that happens to share a layer's name is never
 * mistaken for it. `no-restricted-imports` sees static imports and re-exports only, so the same
 * pattern goes to `no-restricted-syntax` for dynamic `import()` of a string or a template without
 * substitutions (test/lint/layers.test.ts); a path computed at run time is beyond a linter.
 */
const LAYERS = {
  api: { forbidden: ['*'], why: 'src/api imports nothing of ours (it is the contract everyone reads)' },
  operator: {
    forbidden: ['trainer', 'cluster', 'cli'],
    why: 'the operator talks to any API server, never to the trainer, the embedded cluster or the CLI',
  },
  trainer: {
    forbidden: ['operator', 'cluster', 'cli'],
    why: 'the trainer knows only its volume and its own pod',
  },
  cluster: {
    forbidden: ['operator', 'trainer', 'cli', 'api'],
    why: 'src/cluster is a plain Kubernetes subset: it knows nothing of BTX (callers pass what is BTX-specific)',
  },
  util: {
    forbidden: ['operator', 'trainer', 'cluster', 'cli'],
    why: 'src/util is shared by the layers, so it imports none of them',
  },
};
const MAX_DEPTH = 5;

function layerRules() {
  const blocks = [];
  /**
   * @param {string[]} files @param {string[]} forbidden @param {number} depth @param {string} why
   * @returns {import('eslint').Linter.Config}
   */
  const block = (files, forbidden, depth, why) => {
    const up = '\\.\\./'.repeat(depth + 1);
    const target = forbidden.includes('*') ? '' : `(${forbidden.join('|')})(/|$)`;
    const regex = `^${up}${target}`;
    const message = `layer rule: ${why}.`;
    // esquery reads a selector's regex between slashes, so its own slashes are escaped.
    const selectorRegex = `/${regex.replaceAll('/', '\\/')}/`;
    return {
      files,
      rules: {
        'no-restricted-imports': ['error', { patterns: [{ regex, message }] }],
        'no-restricted-syntax': [
          'error',
          { selector: `ImportExpression > Literal.source[value=${selectorRegex}]`, message },
          {
            selector: `ImportExpression > TemplateLiteral.source[expressions.length=0] > TemplateElement[value.cooked=${selectorRegex}]`,
            message,
          },
        ],
      },
    };
  };
  for (const [layer, { forbidden, why, ...rest }] of Object.entries(LAYERS)) {
    for (let depth = 0; depth <= MAX_DEPTH; depth++) {
      blocks.push(block([`src/${layer}/${'*/'.repeat(depth)}*.ts`], forbidden, depth, why));
    }
    const known = 'knownViolations' in rest ? rest.knownViolations : undefined;
    for (const file of known?.files ?? []) {
      const depth = file.split('/').length - 3;
      const allowed = forbidden.filter((f) => !known?.allowed.includes(f));
      blocks.push(block([file], allowed, depth, why));
    }
  }
  return blocks;
}

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'charts/', 'coverage/', '.tools/', '.btx/', '.test-cli-*/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      globals: { process: 'readonly', console: 'readonly', URL: 'readonly', Buffer: 'readonly' },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-explicit-any': 'error',
      'no-console': 'off',
    },
  },
  ...layerRules(),
  {
    files: ['**/*.js', '**/*.mjs'],
    ...tseslint.configs.disableTypeChecked,
    rules: { '@typescript-eslint/consistent-type-imports': 'off' },
  },
);
