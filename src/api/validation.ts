// validateRun(): every reason a BTXRun cannot run, each naming its field the way Kubernetes does.
// It checks the schema (schemaCheck.ts) and then what needs the whole run (the CRD's CEL rules say
// the same on clusters that evaluate them). The operator turns a non-empty result into
// phase Failed with reason InvalidSpec, so a bad run fails clearly instead of half-starting.
import { applyDefaults } from './defaults.js';
import { btxRunSchema } from './schema.js';
import { checkSchema, type FieldError } from './schemaCheck.js';
import { VOLUME_MOUNT_PATH } from './stageContract.js';
import type { BTXRun, BTXRunSpec } from './types.js';
import { API_VERSION, GROUP, KIND } from './types.js';

export type { FieldError } from './schemaCheck.js';

/** The checks only validateRun makes (CEL rules in the CRD mirror them); listed in docs/api.md. */
export const SEMANTIC_CHECKS = [
  'Domain names are unique.',
  'seed sets exactly one of checkpoint or train.',
  'model is required when seed.train is set; dModel is a multiple of heads, heads a multiple of kvHeads, and the head size is even (rotary embeddings).',
  'mix.router.k is at most the number of experts (domains, plus the seed when includeSeedAsExpert).',
  'failurePolicy.minExperts is at most the number of domains.',
  'finetune.dataWeights keys are domain names, and at least one weight is positive.',
  `Data and checkpoint paths are under ${VOLUME_MOUNT_PATH} and have no '..' segments.`,
  'A failure rule sets exactly one of onExitCodes or onPodCondition.',
  `podLabels are valid label keys and values, and none uses the operator's own ${GROUP}/ prefix.`,
  'finetune.computeShare needs model (the finetune steps are computed from the FLOPs of the architecture).',
  'baselines lists each baseline once, needs model (the compute budgets are computed from it) and eval.enabled (baselines are compared by the eval stage).',
  'No domain is named like a model the eval reports beside the experts (btx, seed with eval.compareBaselines, dense and btm when they are baselines).',
] as const;

const LABEL_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const LABEL_PREFIX = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function err(field: string, message: string): FieldError {
  return { field, message: `${field}: ${message}` };
}

// The schema's pattern already requires the /btx prefix; '..' would climb out of the volume again.
function checkPath(path: unknown, field: string): FieldError[] {
  if (typeof path !== 'string' || !path.split('/').includes('..')) return [];
  return [
    err(
      field,
      `Invalid value: ${JSON.stringify(path)}: must not contain '..' segments (it must stay under ${VOLUME_MOUNT_PATH})`,
    ),
  ];
}

function checkLabelKey(key: string): string | undefined {
  const slash = key.lastIndexOf('/');
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (prefix !== undefined && (prefix.length > 253 || !LABEL_PREFIX.test(prefix))) {
    return 'prefix part must be a lowercase RFC 1123 subdomain';
  }
  if (name.length > 63 || !LABEL_NAME.test(name)) {
    return "name part must be 63 characters or less, alphanumeric, '-', '_' or '.', starting and ending with an alphanumeric character";
  }
  if (prefix === GROUP || prefix?.endsWith(`.${GROUP}`))
    return `the ${GROUP}/ prefix is reserved for the operator`;
  return undefined;
}

/** Baselines: each once, with what their budgets and comparison need, and no name clash in the results. */
function checkBaselines(spec: BTXRunSpec, names: unknown[]): FieldError[] {
  const errors: FieldError[] = [];
  const baselines = Array.isArray(spec.baselines) ? spec.baselines : [];
  baselines.forEach((b, i) => {
    if (baselines.indexOf(b) !== i)
      errors.push(err(`spec.baselines[${i}]`, `Duplicate value: ${JSON.stringify(b)}`));
  });
  if (baselines.length > 0 && spec.model === undefined) {
    errors.push(
      err(
        'spec.model',
        'Required value: model is required when baselines are set (their compute budgets are computed from the architecture; with seed.checkpoint give its architecture)',
      ),
    );
  }
  if (baselines.length > 0 && !spec.eval.enabled) {
    errors.push(
      err(
        'spec.baselines',
        'Invalid value: baselines need eval.enabled: true (the eval stage is where they are compared)',
      ),
    );
  }
  // Expert results are named by domain; a domain named like another model would merge two rows.
  const reserved = new Set(['btx', ...(spec.eval.compareBaselines ? ['seed'] : []), ...baselines]);
  names.forEach((name, i) => {
    if (typeof name === 'string' && reserved.has(name as never)) {
      errors.push(
        err(
          `spec.domains[${i}].name`,
          `Invalid value: ${JSON.stringify(name)}: the eval reports a model of that name; rename the domain`,
        ),
      );
    }
  });
  return errors;
}

function checkSemantics(spec: BTXRunSpec): FieldError[] {
  const errors: FieldError[] = [];
  const domains = Array.isArray(spec.domains) ? spec.domains : [];
  const names = domains.map((d) => d?.name);

  const seen = new Set<string>();
  domains.forEach((d, i) => {
    if (typeof d?.name !== 'string') return;
    if (seen.has(d.name))
      errors.push(err(`spec.domains[${i}].name`, `Duplicate value: ${JSON.stringify(d.name)}`));
    seen.add(d.name);
    errors.push(...checkPath(d.data, `spec.domains[${i}].data`));
  });

  const seed = spec.seed ?? {};
  if ((seed.checkpoint === undefined) === (seed.train === undefined)) {
    errors.push(err('spec.seed', 'Invalid value: seed must set exactly one of checkpoint or train'));
  }
  errors.push(...checkPath(seed.checkpoint, 'spec.seed.checkpoint'));
  errors.push(...checkPath(seed.train?.data, 'spec.seed.train.data'));
  if (seed.train !== undefined && spec.model === undefined) {
    errors.push(err('spec.model', 'Required value: model is required when seed.train is set'));
  }

  const model = spec.model;
  if (model && Number.isInteger(model.dModel) && Number.isInteger(model.heads) && model.heads > 0) {
    if (model.dModel % model.heads !== 0) {
      errors.push(
        err(
          'spec.model.dModel',
          `Invalid value: ${model.dModel}: must be a multiple of heads (${model.heads})`,
        ),
      );
    } else if ((model.dModel / model.heads) % 2 !== 0) {
      errors.push(
        err(
          'spec.model.dModel',
          `Invalid value: ${model.dModel}: dModel / heads must be even (rotary embeddings rotate pairs)`,
        ),
      );
    }
    const kvHeads = model.kvHeads ?? model.heads;
    if (Number.isInteger(kvHeads) && kvHeads > 0 && model.heads % kvHeads !== 0) {
      errors.push(err('spec.model.kvHeads', `Invalid value: ${kvHeads}: must divide heads (${model.heads})`));
    }
  }

  const experts = domains.length + (spec.mix.includeSeedAsExpert ? 1 : 0);
  if (spec.mix.router.type === 'topK' && spec.mix.router.k > experts) {
    errors.push(
      err(
        'spec.mix.router.k',
        `Invalid value: ${spec.mix.router.k}: must not exceed the number of experts (${experts}: ${domains.length} domains${spec.mix.includeSeedAsExpert ? ' plus the seed' : ''})`,
      ),
    );
  }

  const minExperts = spec.failurePolicy?.minExperts;
  if (minExperts !== undefined && minExperts > domains.length) {
    errors.push(
      err(
        'spec.failurePolicy.minExperts',
        `Invalid value: ${minExperts}: must not exceed the number of domains (${domains.length})`,
      ),
    );
  }
  (spec.failurePolicy?.rules ?? []).forEach((rule, i) => {
    if ((rule?.onExitCodes === undefined) === (rule?.onPodCondition === undefined)) {
      errors.push(
        err(
          `spec.failurePolicy.rules[${i}]`,
          'Invalid value: a failure rule sets exactly one of onExitCodes or onPodCondition',
        ),
      );
    }
  });

  const weights = spec.finetune.dataWeights;
  if (weights && typeof weights === 'object') {
    for (const key of Object.keys(weights)) {
      if (!names.includes(key)) {
        errors.push(
          err(
            `spec.finetune.dataWeights.${key}`,
            `Invalid value: ${JSON.stringify(key)}: not a domain name (domains: ${names.join(', ')})`,
          ),
        );
      }
    }
    const values = Object.values(weights);
    if (values.length > 0 && values.every((w) => typeof w === 'number' && w <= 0)) {
      errors.push(err('spec.finetune.dataWeights', 'Invalid value: at least one weight must be positive'));
    }
  }

  errors.push(...checkBaselines(spec, names));
  if (spec.finetune.computeShare !== undefined && spec.model === undefined) {
    errors.push(
      err(
        'spec.model',
        'Required value: model is required when finetune.computeShare is set (the finetune steps are computed from the FLOPs of the architecture; with seed.checkpoint give its architecture)',
      ),
    );
  }

  for (const key of Object.keys(spec.podLabels ?? {})) {
    const problem = checkLabelKey(key);
    if (problem)
      errors.push(err(`spec.podLabels.${key}`, `Invalid value: ${JSON.stringify(key)}: ${problem}`));
  }
  for (const [key, value] of Object.entries(spec.podLabels ?? {})) {
    if (typeof value === 'string' && value !== '' && (value.length > 63 || !LABEL_NAME.test(value))) {
      errors.push(
        err(
          `spec.podLabels.${key}`,
          `Invalid value: ${JSON.stringify(value)}: a label value must be 63 characters or less, alphanumeric, '-', '_' or '.', starting and ending with an alphanumeric character`,
        ),
      );
    }
  }
  return errors;
}

/** Every problem with the run, or [] when it can run. Does not change the run. */
export function validateRun(run: BTXRun): FieldError[] {
  const errors: FieldError[] = [];
  if (run.apiVersion !== API_VERSION) {
    errors.push(
      err(
        'apiVersion',
        `Unsupported value: ${JSON.stringify(run.apiVersion)}: supported values: "${API_VERSION}"`,
      ),
    );
  }
  if (run.kind !== KIND)
    errors.push(err('kind', `Unsupported value: ${JSON.stringify(run.kind)}: supported values: "${KIND}"`));
  const schemaErrors = checkSchema(run.spec, btxRunSchema().properties?.spec ?? {}, 'spec');
  errors.push(...schemaErrors);
  // The semantic checks need the spec's skeleton; with broken structure the schema errors say enough.
  const spec = run.spec as Partial<BTXRunSpec> | undefined;
  const skeletonOk =
    typeof spec === 'object' &&
    spec !== null &&
    Array.isArray(spec.domains) &&
    typeof spec.seed === 'object' &&
    spec.seed !== null &&
    !schemaErrors.some(
      (e) =>
        /^spec\.(mix|finetune|failurePolicy)(\.|$)/.test(e.field) && e.message.includes('must be of type'),
    );
  if (skeletonOk) errors.push(...checkSemantics(applyDefaults(run.spec)));
  return errors;
}

/** One line for a condition message: every problem, field first. */
export function formatFieldErrors(errors: FieldError[]): string {
  return errors.map((e) => e.message).join('; ');
}
