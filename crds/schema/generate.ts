/**
 * Builds the CustomResourceDefinitions from kinds.ts, the way controller-gen
 * builds them from Go types. `npm run crds` writes crds/*.yaml; a unit test
 * fails when the committed YAML differs from what this produces.
 */
import { KINDS, type KindDef } from './kinds.js';
import type { Schema } from './builders.js';

import { GROUP, KILN_API_VERSION as API_VERSION, VERSION } from '../../kinds/api.js';

export { API_VERSION, GROUP, VERSION };

function rootSchema(def: KindDef): Schema {
  return {
    type: 'object',
    description: def.description,
    required: ['spec'],
    properties: {
      apiVersion: { type: 'string', description: 'APIVersion of this representation, kiln.dev/v1alpha1.' },
      kind: { type: 'string', description: `Kind of this representation, ${def.kind}.` },
      // The API server allows nothing but the type here (it owns metadata's schema).
      metadata: { type: 'object' },
      spec: def.spec,
      status: def.status,
    },
    ...(def.rules ? { 'x-kubernetes-validations': def.rules } : {}),
  };
}

export function crdFor(def: KindDef): Record<string, unknown> {
  const singular = def.kind.toLowerCase();
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: {
      name: `${def.plural}.${GROUP}`,
      labels: {
        'app.kubernetes.io/name': 'kiln',
        'app.kubernetes.io/part-of': 'kiln',
        // kubectl's ApplySet support accepts custom resources as parents only
        // when their CRD carries this label.
        'applyset.kubernetes.io/is-parent-type': 'true',
      },
    },
    spec: {
      group: GROUP,
      names: {
        kind: def.kind,
        listKind: `${def.kind}List`,
        plural: def.plural,
        singular,
        shortNames: def.shortNames,
        categories: ['kiln'],
      },
      scope: 'Namespaced',
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          schema: { openAPIV3Schema: rootSchema(def) },
          subresources: {
            status: {},
            ...(def.scale
              ? {
                  scale: {
                    specReplicasPath: def.scale.specReplicasPath,
                    statusReplicasPath: '.status.replicas',
                    labelSelectorPath: '.status.selector',
                  },
                }
              : {}),
          },
          additionalPrinterColumns: def.columns,
        },
      ],
    },
  };
}

export function allCrds(): { file: string; crd: Record<string, unknown> }[] {
  return KINDS.map((def) => ({ file: `${def.kind.toLowerCase()}.yaml`, crd: crdFor(def) }));
}
