// The BTXRun CustomResourceDefinition, built from the schema in schema.ts. `npm run gen` writes it
// to crds/ and the Helm chart; `btx local` and the tests apply this object directly.
import { btxRunSchema, type JSONSchema } from './schema.js';
import { GROUP, KIND, PLURAL, SHORT_NAMES, SINGULAR, VERSION } from './types.js';

export const CRD_NAME = `${PLURAL}.${GROUP}`;
/** `kubectl get btx` lists every kind in this category (only BTXRun for now). */
export const CATEGORIES = ['btx'];

export interface PrinterColumn {
  name: string;
  type: 'string' | 'integer' | 'number' | 'boolean' | 'date';
  jsonPath: string;
  description: string;
  priority?: number;
}

/** The wire shape of the CRD (apiextensions.k8s.io/v1), plain JSON. */
export interface BTXRunCRD {
  apiVersion: 'apiextensions.k8s.io/v1';
  kind: 'CustomResourceDefinition';
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec: {
    group: string;
    names: {
      kind: string;
      listKind: string;
      plural: string;
      singular: string;
      shortNames: string[];
      categories: string[];
    };
    scope: 'Namespaced';
    versions: {
      name: string;
      served: boolean;
      storage: boolean;
      schema: { openAPIV3Schema: JSONSchema };
      subresources: { status: Record<string, never> };
      additionalPrinterColumns: PrinterColumn[];
    }[];
  };
}

/** Never `.status.conditions[-1:]`: the last condition is not the current state. */
export const PRINTER_COLUMNS: PrinterColumn[] = [
  { name: 'Phase', type: 'string', jsonPath: '.status.phase', description: 'Where the run stands.' },
  {
    name: 'Experts',
    type: 'string',
    jsonPath: '.status.expertsReady',
    description: 'Experts ready / total.',
  },
  {
    name: 'Restarts',
    type: 'integer',
    jsonPath: '.status.restarts',
    description: 'Expert restarts that spent budget.',
  },
  { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp', description: 'Time since creation.' },
];

export function btxRunCRD(): BTXRunCRD {
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: CRD_NAME },
    spec: {
      group: GROUP,
      names: {
        kind: KIND,
        listKind: `${KIND}List`,
        plural: PLURAL,
        singular: SINGULAR,
        shortNames: [...SHORT_NAMES],
        categories: [...CATEGORIES],
      },
      scope: 'Namespaced',
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          schema: { openAPIV3Schema: btxRunSchema() },
          subresources: { status: {} },
          additionalPrinterColumns: PRINTER_COLUMNS,
        },
      ],
    },
  };
}
