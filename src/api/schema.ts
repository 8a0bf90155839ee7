// The BTXRun openAPIV3Schema, built here and only here: crds/, the Helm chart's CRD and docs/api.md
// are generated from it (scripts/generate.ts), and test/api checks that every field of the TypeScript
// types in types.ts has a described node in it. Defaults come from the DEFAULTS table (defaults.ts).
// The schema says what it can (types, enums, minimums, patterns, CEL rules, immutability);
// validation.ts adds what needs the whole run and is what the operator enforces either way.
import { DEFAULTS } from './defaults.js';
import { BASELINES, CONDITION_TYPES, MAX_ROUNDS_KEPT, PHASES } from './types.js';
import { JOB_STAGES, VOLUME_MOUNT_PATH } from './stageContract.js';

/** The subset of Kubernetes' JSONSchemaProps that the BTXRun schema uses, with its wire names. */
export interface JSONSchema {
  type?: 'object' | 'array' | 'string' | 'integer' | 'number' | 'boolean';
  description?: string;
  format?: string;
  properties?: Record<string, JSONSchema>;
  required?: string[];
  items?: JSONSchema;
  additionalProperties?: JSONSchema;
  anyOf?: JSONSchema[];
  enum?: (string | number)[];
  default?: unknown;
  nullable?: boolean;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: boolean;
  exclusiveMaximum?: boolean;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  minItems?: number;
  maxItems?: number;
  maxProperties?: number;
  'x-kubernetes-int-or-string'?: boolean;
  'x-kubernetes-preserve-unknown-fields'?: boolean;
  'x-kubernetes-embedded-resource'?: boolean;
  'x-kubernetes-list-type'?: 'atomic' | 'set' | 'map';
  'x-kubernetes-list-map-keys'?: string[];
  'x-kubernetes-map-type'?: 'granular' | 'atomic';
  'x-kubernetes-validations'?: ValidationRule[];
}

export interface ValidationRule {
  rule: string;
  message: string;
  fieldPath?: string;
  reason?: 'FieldValueInvalid' | 'FieldValueForbidden' | 'FieldValueRequired' | 'FieldValueDuplicate';
}

/** Most domains (experts) a run may have; also bounds CEL costs on real clusters. */
export const MAX_DOMAINS = 64;
/** RFC 1123 label: names experts, pods and checkpoint folders. */
export const DNS_LABEL_PATTERN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$';
export const DNS_LABEL_MAX_LENGTH = 63;
/** RFC 1123 subdomain: PVC, service account and priority class names. */
export const DNS_SUBDOMAIN_PATTERN = '^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$';
/** Paths a stage reads: the mount point or anything below it. */
export const VOLUME_PATH_PATTERN = `^${VOLUME_MOUNT_PATH}(/.*)?$`;
const MAX_PATH_LENGTH = 1024;
const MAX_STRING_LENGTH = 4096;
const MAX_MAP_ENTRIES = 64;
/** Kubernetes' resource.Quantity syntax. */
export const QUANTITY_PATTERN =
  '^(\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\\+|-)?(([0-9]+(\\.[0-9]*)?)|(\\.[0-9]+))))?$';

type Extra = Omit<JSONSchema, 'type' | 'description'>;

function str(description: string, extra: Extra = {}): JSONSchema {
  return { type: 'string', description, maxLength: MAX_STRING_LENGTH, ...extra };
}

function int(description: string, extra: Extra = {}): JSONSchema {
  return { type: 'integer', description, ...extra };
}

function num(description: string, extra: Extra = {}): JSONSchema {
  return { type: 'number', description, ...extra };
}

function bool(description: string, extra: Extra = {}): JSONSchema {
  return { type: 'boolean', description, ...extra };
}

function obj(description: string, properties: Record<string, JSONSchema>, extra: Extra = {}): JSONSchema {
  return { type: 'object', description, properties, ...extra };
}

function arr(description: string, items: JSONSchema, extra: Extra = {}): JSONSchema {
  return { type: 'array', description, items, ...extra };
}

function stringMap(description: string, values: JSONSchema, extra: Extra = {}): JSONSchema {
  return {
    type: 'object',
    description,
    additionalProperties: values,
    maxProperties: MAX_MAP_ENTRIES,
    ...extra,
  };
}

/** A path on the shared volume; `..` segments would escape it. */
function volumePath(description: string): JSONSchema {
  return str(`${description} An absolute path under ${VOLUME_MOUNT_PATH}, the shared volume.`, {
    maxLength: MAX_PATH_LENGTH,
    pattern: VOLUME_PATH_PATTERN,
    'x-kubernetes-validations': [
      {
        rule: "!self.contains('/../') && !self.endsWith('/..')",
        message: `must not contain '..' segments (it must stay under ${VOLUME_MOUNT_PATH})`,
      },
    ],
  });
}

function immutable(schema: JSONSchema, field: string): JSONSchema {
  return {
    ...schema,
    description: `${schema.description} Immutable once the run is created.`,
    'x-kubernetes-validations': [
      ...(schema['x-kubernetes-validations'] ?? []),
      {
        rule: 'self == oldSelf',
        message: `${field} is immutable once the run is created; create a new BTXRun instead`,
      },
    ],
  };
}

function quantity(description: string): JSONSchema {
  return {
    description,
    anyOf: [{ type: 'integer' }, { type: 'string' }],
    pattern: QUANTITY_PATTERN,
    // Bounds the CEL cost of comparing resources (domains are immutable: `self == oldSelf`).
    maxLength: 64,
    'x-kubernetes-int-or-string': true,
  };
}

function resources(whose: string): JSONSchema {
  return obj(
    `Compute resources of ${whose} (requests and limits, e.g. cpu, memory, nvidia.com/gpu), as in a pod's container.`,
    {
      limits: stringMap(
        'The most of each resource the container may use.',
        quantity('A resource quantity (e.g. 2, 500m, 4Gi).'),
      ),
      requests: stringMap(
        'The resources the scheduler reserves for the container.',
        quantity('A resource quantity (e.g. 2, 500m, 4Gi).'),
      ),
      claims: arr(
        'Dynamic resource claims (DRA) the container uses, by name of a claim in the pod.',
        obj(
          'One resource claim.',
          {
            name: str('Name of a resource claim in the pod spec.', { maxLength: DNS_LABEL_MAX_LENGTH }),
            request: str('The request within the claim, when the claim has several.', {
              maxLength: DNS_LABEL_MAX_LENGTH,
            }),
          },
          { required: ['name'] },
        ),
        { maxItems: 16, 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['name'] },
      ),
    },
  );
}

function activeDeadline(stage: string): JSONSchema {
  return int(
    `Seconds the ${stage} may run before it is failed (its pod's activeDeadlineSeconds). Unset: no deadline.`,
    { minimum: 1 },
  );
}

const modelSchema: JSONSchema = obj(
  'The architecture of the seed when it is trained here (a Llama-style decoder). Required with seed.train.',
  {
    vocabSize: int('Vocabulary size. The built-in trainer uses a byte-level tokenizer of 259 symbols.', {
      minimum: 1,
      default: DEFAULTS.model.vocabSize,
    }),
    dModel: int('Hidden size (width of the residual stream). A multiple of heads.', { minimum: 1 }),
    layers: int('Number of transformer blocks.', { minimum: 1 }),
    heads: int('Attention heads.', { minimum: 1 }),
    kvHeads: int('Key/value heads (grouped-query attention); divides heads. Default: heads.', { minimum: 1 }),
    ffnHidden: int('Hidden size of the SwiGLU feed-forward network (each expert in the MoE).', {
      minimum: 1,
    }),
    seqLen: int('Context length in tokens.', { minimum: 1 }),
    ropeTheta: num('Base of the rotary position embedding.', {
      minimum: 0,
      exclusiveMinimum: true,
      default: DEFAULTS.model.ropeTheta,
    }),
    rmsNormEps: num('Epsilon of RMSNorm.', {
      minimum: 0,
      exclusiveMinimum: true,
      default: DEFAULTS.model.rmsNormEps,
    }),
    tieEmbeddings: bool('Share the input embedding with the output projection.', {
      default: DEFAULTS.model.tieEmbeddings,
    }),
  },
  {
    required: ['dModel', 'layers', 'heads', 'ffnHidden', 'seqLen'],
    'x-kubernetes-validations': [
      {
        rule: 'self.dModel % self.heads == 0',
        message: 'dModel must be a multiple of heads',
        fieldPath: '.dModel',
      },
      {
        rule: '!has(self.kvHeads) || self.heads % self.kvHeads == 0',
        message: 'kvHeads must divide heads',
        fieldPath: '.kvHeads',
      },
    ],
  },
);

const storageSchema: JSONSchema = obj(
  `The volume shared by all stages, mounted at ${VOLUME_MOUNT_PATH}.`,
  {
    persistentVolumeClaim: obj(
      "A PersistentVolumeClaim in the run's namespace (ReadWriteMany when stages run on several nodes).",
      {
        claimName: str('Name of the PVC.', { minLength: 1, maxLength: 253, pattern: DNS_SUBDOMAIN_PATTERN }),
      },
      { required: ['claimName'] },
    ),
  },
  { required: ['persistentVolumeClaim'] },
);

const seedSchema: JSONSchema = obj(
  'Where the dense seed model comes from: exactly one of checkpoint (an existing model) or train (pretrain one here).',
  {
    checkpoint: volumePath(
      'A dense Llama-architecture checkpoint folder (config.json + safetensors) to branch the experts from.',
    ),
    train: obj(
      'Pretrain a small seed model on this data first (needs spec.model).',
      {
        data: volumePath('The seed corpus: a .txt/.md/.jsonl file or a folder of them.'),
        steps: int('Training steps of the seed.', { minimum: 1 }),
        batchSize: int('Sequences per step.', { minimum: 1, default: DEFAULTS.seedTrain.batchSize }),
        learningRate: num('Peak learning rate (AdamW).', {
          minimum: 0,
          exclusiveMinimum: true,
          default: DEFAULTS.seedTrain.learningRate,
        }),
      },
      { required: ['data', 'steps'] },
    ),
  },
  {
    'x-kubernetes-validations': [
      {
        rule: 'has(self.checkpoint) != has(self.train)',
        message: 'seed must set exactly one of checkpoint or train',
      },
    ],
  },
);

const domainSchema: JSONSchema = obj(
  'One domain: the data one expert is trained on.',
  {
    name: str('Domain name, an RFC 1123 label; names the expert, its pod and its checkpoint folder.', {
      minLength: 1,
      maxLength: DNS_LABEL_MAX_LENGTH,
      pattern: DNS_LABEL_PATTERN,
    }),
    data: volumePath("The domain's training data: a .txt/.md/.jsonl file or a folder of them."),
    steps: int("Training steps of this domain's expert. Default: expert.steps.", { minimum: 1 }),
    resources: resources("this domain's expert pod (overrides expert.resources)"),
  },
  { required: ['name', 'data'] },
);

const tolerationSchema: JSONSchema = obj('A toleration, as in a pod spec.', {
  key: str('Taint key; empty with operator Exists matches every taint.', { maxLength: 317 }),
  operator: str('Exists or Equal (default Equal).', { enum: ['Exists', 'Equal'] }),
  value: str('Taint value to match with operator Equal.', { maxLength: 63 }),
  effect: str('Taint effect to match; empty matches all.', {
    enum: ['NoSchedule', 'PreferNoSchedule', 'NoExecute'],
  }),
  tolerationSeconds: int('With effect NoExecute: how long the pod stays bound after the taint appears.', {
    format: 'int64',
  }),
});

/** An object that keeps the fields it does not describe (Kubernetes' own types: not ours to list). */
function open(description: string, properties: Record<string, JSONSchema>, extra: Extra = {}): JSONSchema {
  return { ...obj(description, properties, extra), 'x-kubernetes-preserve-unknown-fields': true };
}

const namedList = (description: string, item: string) =>
  arr(
    description,
    open(`One ${item}.`, { name: str(`Name of the ${item}.`, { maxLength: 253 }) }, { required: ['name'] }),
    {
      maxItems: 64,
    },
  );

/**
 * spec.expert.template: a PodTemplateSpec. The parts the operator reads to merge it (labels,
 * annotations, containers and their command, args, env and mounts, volumes, the scheduling fields)
 * are typed, so a string where a list or map belongs is refused when the run is created (before:
 * accepted, then every reconcile failed with `.find is not a function`); the rest is Kubernetes'
 * PodSpec, checked by the API server when the pod is created.
 */
const podTemplateSchema: JSONSchema = open(
  'A PodTemplateSpec merged under each generated expert pod: extra labels, annotations, volumes, env, sidecars. Generated fields win.',
  {
    metadata: open('Labels and annotations added to each expert pod.', {
      labels: stringMap('Extra labels.', str('Label value.', { maxLength: 63 })),
      annotations: stringMap('Extra annotations.', str('Annotation value.')),
    }),
    spec: open('A PodSpec; the fields below are the ones merged with the generated pod.', {
      containers: arr(
        'The trainer container (named trainer, or the first) may set command, args, image, env and mounts; the others run as sidecars.',
        open(
          'One container.',
          {
            name: str('Container name.', { maxLength: 63 }),
            image: str('Image.', { maxLength: 1024 }),
            command: arr('Entrypoint.', str('One word.'), { maxItems: 256 }),
            args: arr('Arguments.', str('One argument.'), { maxItems: 256 }),
            env: namedList("Extra environment (the stage contract's names win).", 'variable'),
            volumeMounts: namedList('Extra mounts (the /btx mount wins).', 'mount'),
          },
          { required: ['name'] },
        ),
        { maxItems: 16 },
      ),
      volumes: namedList('Extra volumes (the btx volume wins).', 'volume'),
      nodeSelector: stringMap(
        'Node labels (spec.expert.nodeSelector wins).',
        str('Label value.', { maxLength: 63 }),
      ),
      tolerations: arr('Tolerations (spec.expert.tolerations win).', open('One toleration.', {}), {
        maxItems: 32,
      }),
    }),
  },
);

const tokenizeSchema: JSONSchema = obj(
  "The tokenize stage, first of all: each domain's text (and the seed's training data) becomes token shards once, with the seed's tokenizer (seed.checkpoint's tokenizer.json, or the built-in byte tokenizer for a seed trained here), in one Job per domain; shards that are already current are kept (the Job only checks them). A domain whose source files add up to more than partBytes is tokenized by an Indexed Job of ceil(bytes / partBytes) pods, at most maxParts.",
  {
    partBytes: int(
      'Bytes of source text one pod tokenizes at most; a bigger domain is split across pods (at ~2 MB/s per pod, 1 GiB takes about 9 minutes).',
      { minimum: 1, format: 'int64', default: DEFAULTS.tokenize.partBytes },
    ),
    maxParts: int('The most pods one domain is split across.', {
      minimum: 1,
      maximum: 1000,
      default: DEFAULTS.tokenize.maxParts,
    }),
    activeDeadlineSeconds: activeDeadline('each tokenize Job'),
    resources: resources('each tokenize pod'),
  },
  { default: {} },
);

const expertSchema: JSONSchema = obj(
  'Defaults for every expert pod (one per domain).',
  {
    steps: int('Training steps per expert.', { minimum: 1, default: DEFAULTS.expert.steps }),
    batchSize: int('Sequences per step.', { minimum: 1, default: DEFAULTS.expert.batchSize }),
    learningRate: num('Peak learning rate (AdamW).', {
      minimum: 0,
      exclusiveMinimum: true,
      default: DEFAULTS.expert.learningRate,
    }),
    checkpointEvery: int(
      'Write a checkpoint every this many steps; a restarted expert resumes from the newest.',
      {
        minimum: 1,
        default: DEFAULTS.expert.checkpointEvery,
      },
    ),
    maxRestarts: int(
      'Restarts per expert that spend budget. Eviction, preemption and node loss restart without spending it.',
      { minimum: 0, default: DEFAULTS.expert.maxRestarts },
    ),
    backoffSeconds: int('Delay before the first restart; doubles per restart, capped at 10 minutes.', {
      minimum: 0,
      default: DEFAULTS.expert.backoffSeconds,
    }),
    activeDeadlineSeconds: activeDeadline('each expert pod'),
    resources: resources('each expert pod (e.g. nvidia.com/gpu: 1)'),
    nodeSelector: stringMap(
      'Node labels an expert pod must be scheduled on.',
      str('Label value.', { maxLength: 63 }),
    ),
    tolerations: arr('Tolerations of every expert pod.', tolerationSchema, { maxItems: 32 }),
    priorityClassName: str('PriorityClass of expert pods.', { maxLength: 253 }),
    schedulerName: str('Scheduler of expert pods (e.g. a gang scheduler).', { maxLength: 253 }),
    template: podTemplateSchema,
  },
  { default: {} },
);

const failureRuleSchema: JSONSchema = obj(
  'Decides what a failed expert pod means. Sets exactly one of onExitCodes or onPodCondition.',
  {
    action: str(
      'Restart: restart spending budget; FailExpert: fail the expert at once; Ignore: restart without spending budget.',
      { enum: ['Restart', 'FailExpert', 'Ignore'] },
    ),
    onExitCodes: arr(
      'Matches when the trainer container exited with one of these codes.',
      int('An exit code.', { minimum: 1, maximum: 255 }),
      { minItems: 1, maxItems: 255, 'x-kubernetes-list-type': 'set' },
    ),
    onPodCondition: str('Matches when the pod has this condition True (e.g. DisruptionTarget).', {
      maxLength: 316,
    }),
  },
  {
    required: ['action'],
    'x-kubernetes-validations': [
      {
        rule: 'has(self.onExitCodes) != has(self.onPodCondition)',
        message: 'a failure rule sets exactly one of onExitCodes or onPodCondition',
      },
    ],
  },
);

const mixSchema: JSONSchema = obj(
  'How the trained experts become one Mixture-of-Experts model.',
  {
    includeSeedAsExpert: bool('Add the seed as one more (generalist) expert, as in the BTX paper.', {
      default: DEFAULTS.mix.includeSeedAsExpert,
    }),
    router: obj(
      'The token router of every MoE layer.',
      {
        type: str(
          'topK: softmax over experts, top k, renormalised (Mixtral); switch: top 1; soft: all experts weighted; sampleTop1: sample one expert (training), top 1 (inference).',
          { enum: ['topK', 'switch', 'soft', 'sampleTop1'], default: DEFAULTS.mix.router.type },
        ),
        k: int(
          'Experts per token for topK; at most the number of experts (domains, plus the seed if included).',
          {
            minimum: 1,
            maximum: MAX_DOMAINS + 1,
            default: DEFAULTS.mix.router.k,
          },
        ),
      },
      { default: {} },
    ),
    routerInit: str('Initial router weights: zeros (uniform routing) or normal (small random).', {
      enum: ['zeros', 'normal'],
      default: DEFAULTS.mix.routerInit,
    }),
    combine: str(
      'How the non-feed-forward weights (attention, norms, embeddings, head) are combined. average: the float32 mean over all experts (the BTX paper). seed: copied from the seed checkpoint, as mergekit-moe does. weighted: weighted by the tokens each expert trained on (its steps x expert.batchSize; the seed as generalist counts seed.train steps x batch size when the run trains it, else the mean of the experts).',
      { enum: ['average', 'seed', 'weighted'], default: DEFAULTS.mix.combine },
    ),
    dtype: str('Tensor type of the mixed checkpoint.', {
      enum: ['f32', 'f16', 'bf16'],
      default: DEFAULTS.mix.dtype,
    }),
    activeDeadlineSeconds: activeDeadline('mix Job'),
    resources: resources('the mix pod'),
  },
  { default: {} },
);

const finetuneSchema: JSONSchema = obj(
  'Fine-tuning of the mixed model on all domains together (learns the routers).',
  {
    steps: int('Fine-tuning steps (ignored when computeShare is set).', {
      minimum: 1,
      default: DEFAULTS.finetune.steps,
    }),
    computeShare: num(
      "The finetune's share of BTX's training compute (experts + finetune, in FLOPs = 6 x active parameters x tokens, as status.compute counts them); when set, the operator sets the finetune's steps from the experts' compute so the finetune spends this share (the BTX paper: 0.23), and finetune.steps is ignored. Needs model (FLOPs are counted from the architecture).",
      { minimum: 0, exclusiveMinimum: true, maximum: 1, exclusiveMaximum: true },
    ),
    batchSize: int('Sequences per step.', { minimum: 1, default: DEFAULTS.finetune.batchSize }),
    learningRate: num('Peak learning rate (AdamW).', {
      minimum: 0,
      exclusiveMinimum: true,
      default: DEFAULTS.finetune.learningRate,
    }),
    loadBalancingCoef: num('Weight of the Switch load-balancing loss.', {
      minimum: 0,
      default: DEFAULTS.finetune.loadBalancingCoef,
    }),
    freezeExperts: bool(
      'Train only the routers (and shared weights), not the expert feed-forward networks.',
      {
        default: DEFAULTS.finetune.freezeExperts,
      },
    ),
    checkpointEvery: int('Write a checkpoint every this many steps.', {
      minimum: 1,
      default: DEFAULTS.finetune.checkpointEvery,
    }),
    dataWeights: stringMap(
      'Sampling weight per domain name (keys are domain names). Default: equal weights.',
      num('Relative weight; 0 leaves the domain out.', { minimum: 0 }),
    ),
    activeDeadlineSeconds: activeDeadline('finetune Job'),
    resources: resources('the finetune pod'),
  },
  { default: {} },
);

const evalSchema: JSONSchema = obj(
  'Held-out evaluation: loss and perplexity per domain, and routing shares.',
  {
    enabled: bool('Run the eval stage.', { default: DEFAULTS.eval.enabled }),
    batches: int('Held-out batches per domain.', { minimum: 1, default: DEFAULTS.eval.batches }),
    compareBaselines: bool('Also evaluate the seed and each expert, not only the BTX model.', {
      default: DEFAULTS.eval.compareBaselines,
    }),
    activeDeadlineSeconds: activeDeadline('eval Job'),
    resources: resources('the eval pod'),
  },
  { default: {} },
);

const specSchema: JSONSchema = obj(
  'The desired BTX run: a seed, one expert per domain, then mix, finetune and eval.',
  {
    image: str('Trainer image of every stage pod (the stage contract: docs/stage-contract.md).', {
      minLength: 1,
      maxLength: 1024,
      default: DEFAULTS.image,
    }),
    imagePullPolicy: str('Pull policy of every stage pod.', {
      enum: ['Always', 'IfNotPresent', 'Never'],
      default: DEFAULTS.imagePullPolicy,
    }),
    serviceAccountName: str('Service account of every stage pod (needs patch on its own pod for progress).', {
      maxLength: 253,
      pattern: DNS_SUBDOMAIN_PATTERN,
    }),
    podLabels: stringMap(
      'Extra labels on every stage pod (e.g. kueue.x-k8s.io/queue-name).',
      str('Label value.', { maxLength: 63 }),
    ),
    storage: immutable(storageSchema, 'storage'),
    model: immutable(modelSchema, 'model'),
    seed: immutable(seedSchema, 'seed'),
    domains: arr(
      'The domains, one expert each. Names are unique. Existing domains are immutable; once the run has Succeeded, appending domains trains one new expert each (from the same seed) and mixes, finetunes and evaluates all experts again, and removing domains mixes again without them: a new round (status.round), the earlier ones kept in status.rounds.',
      {
        ...domainSchema,
        'x-kubernetes-validations': [
          {
            rule: 'self == oldSelf',
            message:
              'an existing domain is immutable (its expert was trained on it); a Succeeded run may only append or remove domains',
          },
        ],
      },
      {
        minItems: 1,
        maxItems: MAX_DOMAINS,
        'x-kubernetes-list-type': 'map',
        'x-kubernetes-list-map-keys': ['name'],
      },
    ),
    tokenize: tokenizeSchema,
    expert: expertSchema,
    failurePolicy: obj('What expert failures mean, and how many experts must succeed.', {
      rules: arr(
        'Evaluated in order; the first match decides. Unmatched failures restart while budget remains.',
        failureRuleSchema,
        {
          maxItems: 32,
        },
      ),
      minExperts: int(
        'Mix once this many experts succeeded and the others failed for good. Default: all domains.',
        { minimum: 1, maximum: MAX_DOMAINS },
      ),
    }),
    mix: mixSchema,
    finetune: finetuneSchema,
    eval: evalSchema,
    baselines: arr(
      "Compute-matched baselines to train (or build) and evaluate beside the BTX model, as in the paper's comparison. dense: the seed trained further on all domains (expert.learningRate and batchSize, finetune.dataWeights). sparseUpcycling: an MoE whose experts are all copies of the seed (as many as BTX mixes, the same router and routerInit), trained on all domains with the finetune recipe. btm: Branch-Train-Merge, the trained experts as an ensemble weighted by the posterior over domains given the context so far (uniform prior); evaluated only. dense and sparseUpcycling train for the steps that spend the FLOPs of the BTX experts + finetune (status.compute); they start with the experts and eval waits for them. Needs model and eval.enabled.",
      str('A baseline.', { enum: [...BASELINES] }),
      { maxItems: BASELINES.length, 'x-kubernetes-list-type': 'set', default: [...DEFAULTS.baselines] },
    ),
    randomSeed: int('Seed of initialisation and data order, for reproducible runs.', {
      minimum: 0,
      default: DEFAULTS.randomSeed,
    }),
    suspend: bool('Stop running pods and keep checkpoints; false resumes, spending no restart budget.', {
      default: DEFAULTS.suspend,
    }),
    ttlSecondsAfterFinished: int(
      "Delete the run's pods and Jobs this long after it Succeeded or Failed (checkpoints stay). Unset: keep them.",
      { minimum: 0 },
    ),
  },
  {
    required: ['storage', 'seed', 'domains'],
    'x-kubernetes-validations': [
      {
        rule: '!has(self.seed.train) || has(self.model)',
        message: 'model is required when seed.train is set',
        fieldPath: '.model',
        reason: 'FieldValueRequired',
      },
      {
        rule: 'has(self.model) == has(oldSelf.model)',
        message: 'model is immutable once the run is created; create a new BTXRun instead',
        fieldPath: '.model',
      },
      {
        rule: "!has(self.mix) || !has(self.mix.router) || !has(self.mix.router.k) || !has(self.mix.router.type) || self.mix.router.type != 'topK' || self.mix.router.k <= size(self.domains) + ((!has(self.mix.includeSeedAsExpert) || self.mix.includeSeedAsExpert) ? 1 : 0)",
        message: 'mix.router.k must not exceed the number of experts (domains, plus the seed if included)',
        fieldPath: '.mix.router.k',
      },
      {
        rule: '!has(self.failurePolicy) || !has(self.failurePolicy.minExperts) || self.failurePolicy.minExperts <= size(self.domains)',
        message: 'failurePolicy.minExperts must not exceed the number of domains',
        fieldPath: '.failurePolicy.minExperts',
      },
      {
        rule: '!has(self.baselines) || size(self.baselines) == 0 || has(self.model)',
        message: 'model is required when baselines are set (their compute budgets are computed from it)',
        fieldPath: '.model',
        reason: 'FieldValueRequired',
      },
      {
        rule: '!has(self.finetune) || !has(self.finetune.computeShare) || has(self.model)',
        message:
          'model is required when finetune.computeShare is set (FLOPs are counted from the architecture)',
        fieldPath: '.model',
        reason: 'FieldValueRequired',
      },
      {
        rule: '!has(self.finetune) || !has(self.finetune.dataWeights) || self.finetune.dataWeights.all(k, self.domains.exists(d, d.name == k))',
        message: 'finetune.dataWeights keys must be domain names',
        fieldPath: '.finetune.dataWeights',
      },
    ],
  },
);

const timeField = (description: string): JSONSchema =>
  str(description, { format: 'date-time', maxLength: 64 });

const conditionSchema: JSONSchema = obj(
  'One condition of the run; its meaning never flips.',
  {
    type: str('What the condition says.', { enum: [...CONDITION_TYPES] }),
    status: str('True, False or Unknown.', { enum: ['True', 'False', 'Unknown'] }),
    reason: str('Why, in CamelCase (e.g. ExpertFailed, InvalidSpec).', { maxLength: 1024 }),
    message: str('Why, for people.', { maxLength: 32768 }),
    lastTransitionTime: timeField('When status last changed.'),
    observedGeneration: int('The spec generation this condition was set from.', {
      minimum: 0,
      format: 'int64',
    }),
  },
  { required: ['type', 'status'] },
);

const failureSchema: JSONSchema = obj('Why an expert pod last failed.', {
  attempt: int('The attempt that failed.', { minimum: 1 }),
  reason: str('Classified cause (e.g. Evicted, Preempted, NodeLost, Error, PermanentExitCode).', {
    maxLength: 1024,
  }),
  message: str('Details, for people.', { maxLength: 32768 }),
  exitCode: int("The trainer container's exit code, when it exited."),
  countsAgainstBudget: bool('Whether this failure spent restart budget.'),
  time: timeField('When the failure was observed.'),
});

const expertStatusSchema: JSONSchema = obj(
  "One expert's state.",
  {
    name: str('The domain name.', { maxLength: DNS_LABEL_MAX_LENGTH }),
    phase: str(
      'Pending, Running, Restarting, Succeeded, Failed, or Stopped (the run failed before this expert finished; its checkpoints are kept).',
      { enum: ['Pending', 'Running', 'Restarting', 'Succeeded', 'Failed', 'Stopped'] },
    ),
    attempt: int('1-based; each replacement pod is attempt + 1.', { minimum: 0 }),
    restarts: int('Restarts that spent budget.', { minimum: 0 }),
    totalRestarts: int('All restarts, budget or not.', { minimum: 0 }),
    pod: str('Name of the current (or last) pod.', { maxLength: 253 }),
    step: int('Last reported training step.', { minimum: 0 }),
    totalSteps: int('Steps this expert trains for.', { minimum: 0 }),
    loss: num('Last reported training loss.', { nullable: true }),
    checkpoint: str('Newest complete checkpoint (a path under /btx).', { maxLength: MAX_PATH_LENGTH }),
    startTime: timeField('When the first attempt started.'),
    completionTime: timeField('When the expert finished.'),
    nextAttemptTime: timeField('When the next attempt may start (restart backoff).'),
    lastFailure: failureSchema,
  },
  { required: ['name', 'phase', 'attempt', 'restarts'] },
);

function stageStatus(stage: string): JSONSchema {
  return obj(
    `State of the ${stage} stage.`,
    {
      job: str('Name of the Job.', { maxLength: 253 }),
      attempt: int('1 for the first Job of the stage; +1 when resuming after a suspend starts it again.', {
        minimum: 1,
      }),
      phase: str('Pending, Running, Succeeded or Failed.', {
        enum: ['Pending', 'Running', 'Succeeded', 'Failed'],
      }),
      checkpoint: str('The checkpoint (or result folder) it wrote.', { maxLength: MAX_PATH_LENGTH }),
      startTime: timeField('When the stage started.'),
      completionTime: timeField('When the stage finished.'),
      message: str('Why it failed, or what it is waiting for.', { maxLength: 32768 }),
    },
    { required: ['phase'] },
  );
}

const resultsSchema: JSONSchema = arr(
  'Held-out loss, perplexity and bits per byte per model (seed, each expert, the BTX model, the baselines) and domain.',
  obj(
    'One evaluation.',
    {
      model: str('Which model: seed, an expert (by domain), btx, dense, sparseUpcycling or btm.', {
        maxLength: 253,
      }),
      domain: str("Which domain's held-out data.", { maxLength: DNS_LABEL_MAX_LENGTH }),
      loss: num('Mean cross-entropy per token (nats).'),
      perplexity: num('exp(loss).'),
      bitsPerByte: num(
        'loss / ln 2 x tokens per UTF-8 byte of the held-out text: comparable across tokenizers.',
      ),
    },
    { required: ['model', 'domain', 'loss', 'perplexity'] },
  ),
  { maxItems: (MAX_DOMAINS + 5) * MAX_DOMAINS },
);

const routingSchema: JSONSchema = arr(
  "Share of each domain's tokens routed to each expert, averaged over the MoE layers.",
  obj(
    'One share.',
    {
      domain: str('The domain whose tokens were routed.', { maxLength: DNS_LABEL_MAX_LENGTH }),
      expert: str('The expert they went to.', { maxLength: 253 }),
      share: num('Fraction of the tokens, 0..1.', { minimum: 0, maximum: 1 }),
    },
    { required: ['domain', 'expert', 'share'] },
  ),
  { maxItems: (MAX_DOMAINS + 1) * MAX_DOMAINS },
);

function tokenizeStatus(): JSONSchema {
  const stage = stageStatus('tokenize');
  const count = (description: string) => int(description, { minimum: 0, format: 'int64' });
  const domain = obj(
    "One domain's shards (or the seed's training data, named _seed).",
    {
      name: str('The domain name, or _seed for seed.train.data.', { maxLength: DNS_LABEL_MAX_LENGTH }),
      phase: str('Pending, Running, Succeeded or Failed.', {
        enum: ['Pending', 'Running', 'Succeeded', 'Failed'],
      }),
      job: str('Name of the current (or last) Job.', { maxLength: 253 }),
      parts: int('More than 1: tokenized by an Indexed Job of this many pods.', { minimum: 1 }),
      sourceBytes: count('Bytes of the source files, as measured by the pod that asked for the split.'),
      documents: count('Documents (train and held-out).'),
      tokens: count('Tokens (train and held-out, separators included).'),
      bytes: count("UTF-8 bytes of the documents' text."),
      heldOutTokens: count('Tokens of the held-out stream.'),
      reused: bool('The shards were current: nothing was tokenized.'),
      message: str('Why it failed.', { maxLength: 32768 }),
    },
    { required: ['name', 'phase'] },
  );
  return {
    ...stage,
    properties: {
      ...stage.properties,
      tokens: str('The folder of the shards (BTX_TOKENS): <tokens>/<domain>/manifest.json.', {
        maxLength: MAX_PATH_LENGTH,
      }),
      domains: arr('One entry per domain, then _seed when the seed is trained here.', domain, {
        maxItems: MAX_DOMAINS + 1,
      }),
    },
  };
}

const statusSchema: JSONSchema = obj('The observed state of the run, written by the operator.', {
  phase: str('Where the run stands.', { enum: [...PHASES] }),
  conditions: arr(
    'Tokenized, ExpertsReady, Mixed, Finetuned, Evaluated, Suspended, Restarting, Succeeded, Failed, SpecApplied, ChildFailure.',
    conditionSchema,
    {
      maxItems: 16,
      'x-kubernetes-list-type': 'map',
      'x-kubernetes-list-map-keys': ['type'],
    },
  ),
  observedGeneration: int('The spec generation the status was computed from.', {
    minimum: 0,
    format: 'int64',
  }),
  startTime: timeField('When the operator started the run.'),
  completionTime: timeField('When the run Succeeded or Failed.'),
  expertsReady: str('"ready/total" experts, for the printer column.', { maxLength: 16 }),
  restarts: int('Sum of expert restarts, for the printer column.', { minimum: 0 }),
  experts: arr('One entry per domain.', expertStatusSchema, { maxItems: MAX_DOMAINS }),
  ...Object.fromEntries(
    JOB_STAGES.map((stage) => [stage, stage === 'tokenize' ? tokenizeStatus() : stageStatus(stage)]),
  ),
  results: resultsSchema,
  meanResults: arr(
    "Each model's held-out results averaged over the domains, every domain weighted equally (the paper's average column).",
    obj(
      'One model.',
      {
        model: str('Which model (as in results).', { maxLength: 253 }),
        loss: num('Mean over the domains of the per-domain loss (nats per token).'),
        perplexity: num('exp(loss).'),
        bitsPerByte: num('Mean over the domains of bits per byte.'),
        domains: int('How many domains the mean is over.', { minimum: 0 }),
      },
      { required: ['model', 'loss', 'perplexity', 'domains'] },
    ),
    { maxItems: MAX_DOMAINS + 8 },
  ),
  compute: arr(
    "Training compute (FLOPs = 6 x active parameters x tokens; the seed, shared by all, is left out) of the BTX model (experts + finetune, and the finetune's share) and of each trained baseline, whose steps are chosen to match it. Set when spec.baselines or finetune.computeShare is.",
    obj(
      'One model.',
      {
        model: str('btx, dense or sparseUpcycling.', { enum: ['btx', 'dense', 'sparseUpcycling'] }),
        steps: int('Optimizer steps (btx: every expert plus the finetune).', { minimum: 0 }),
        tokens: num('Training tokens: steps x batch size x window.', { minimum: 0 }),
        flops: num('6 x active parameters x tokens.', { minimum: 0 }),
        relativeToBtx: num("flops / the BTX model's flops.", { minimum: 0 }),
        finetuneShare: num(
          "btx only: the finetune's share of its flops, the rest being the experts' (the BTX paper spent 0.23; finetune.computeShare sets it).",
          { minimum: 0, maximum: 1 },
        ),
      },
      { required: ['model', 'steps', 'tokens', 'flops', 'relativeToBtx'] },
    ),
    { maxItems: 3 },
  ),
  startedWith: obj(
    'The immutable fields as the current round started with them; a later change to them is reported (condition SpecApplied False, reason ImmutableFieldChanged) and not applied.',
    {
      domains: arr('The domains the run started with.', domainSchema, { maxItems: MAX_DOMAINS }),
      model: modelSchema,
      storage: storageSchema,
      seed: seedSchema,
    },
    { required: ['domains', 'storage'] },
  ),
  round: int(
    'The current round: 1, then +1 each time domains are appended or removed after the run Succeeded.',
    { minimum: 1 },
  ),
  rounds: arr(
    `The earlier rounds, oldest first (the last ${MAX_ROUNDS_KEPT}).`,
    obj(
      'What one finished round produced.',
      {
        round: int('The round.', { minimum: 1 }),
        domains: arr(
          'Its domains, in expert order.',
          str('A domain name.', { maxLength: DNS_LABEL_MAX_LENGTH }),
          { maxItems: MAX_DOMAINS },
        ),
        checkpoint: str("The round's BTX model (finetuned, or mixed when finetune was skipped).", {
          maxLength: MAX_PATH_LENGTH,
        }),
        completionTime: timeField('When the round Succeeded.'),
        results: resultsSchema,
        routing: routingSchema,
      },
      { required: ['round', 'domains'] },
    ),
    { maxItems: MAX_ROUNDS_KEPT },
  ),
  routing: routingSchema,
});

const NEW = 'self.spec.domains.map(d, d.name)';
const OLD = 'oldSelf.spec.domains.map(d, d.name)';
const OLD_SIZE = 'size(oldSelf.spec.domains)';

/**
 * spec.domains may change as a set of names only on a Succeeded run (the rule sits at the root to
 * see the stored status), and only by appending names at the end or by leaving names out, keeping
 * the order (the per-domain rule keeps each existing domain as it was). On names, not whole
 * domains, to keep the CEL cost low on real clusters; the operator checks the same with
 * domainsChange() either way.
 */
export const DOMAINS_TRANSITION_RULE: ValidationRule = {
  rule: [
    `${NEW} == ${OLD}`,
    "|| (has(oldSelf.status) && has(oldSelf.status.phase) && oldSelf.status.phase == 'Succeeded' && (",
    `(size(self.spec.domains) > ${OLD_SIZE} && ${NEW}.filter(n, n in ${OLD}) == ${OLD}`,
    `&& self.spec.domains[${OLD_SIZE} - 1].name == oldSelf.spec.domains[${OLD_SIZE} - 1].name)`,
    `|| (size(self.spec.domains) < ${OLD_SIZE} && ${OLD}.filter(n, n in ${NEW}) == ${NEW})))`,
  ].join(' '),
  message:
    'domains can change only once the run has Succeeded, and only by appending domains at the end or removing domains (one or the other; no reordering or renaming); create a new BTXRun instead',
  fieldPath: '.spec.domains',
};

/** The openAPIV3Schema of BTXRun v1alpha1. */
export function btxRunSchema(): JSONSchema {
  return obj(
    'BTXRun trains a Mixture-of-Experts language model with Branch-Train-MiX: experts branched from a seed, trained per domain in parallel, mixed, fine-tuned and evaluated.',
    {
      apiVersion: str('Versioned schema of this object: btx.ai/v1alpha1.', { maxLength: 253 }),
      kind: str('Kind of this object: BTXRun.', { maxLength: 253 }),
      // Only `type: object`: the API server owns ObjectMeta's schema (kubectl explain shows its docs).
      metadata: { type: 'object' },
      spec: specSchema,
      status: statusSchema,
    },
    { required: ['spec'], 'x-kubernetes-validations': [DOMAINS_TRANSITION_RULE] },
  );
}
