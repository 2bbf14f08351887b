import { z } from 'zod';

/**
 * Schemas of the fields the guard reads, per kind. They are loose: everything else in
 * an object passes through unread. A field the guard reads with the wrong type is an
 * error (HTTP 400), because counting it as absent could hide instances.
 */

const count = z.number().int().min(0);
const intOrPercent = z.union([z.number().int().min(0), z.string().regex(/^\d+%$/, 'a percentage such as "25%"')]);
const stringMap = z.record(z.string(), z.string());

export const metadataShape = z.looseObject({
  name: z.string().optional(),
  generateName: z.string().optional(),
  namespace: z.string().optional(),
  uid: z.string().optional(),
  annotations: stringMap.nullish(),
});

const nodeSelectorRequirement = z.looseObject({
  key: z.string(),
  operator: z.enum(['In', 'NotIn', 'Exists', 'DoesNotExist', 'Gt', 'Lt']),
  values: z.array(z.string()).nullish(),
});

export const nodeSelectorTermShape = z.looseObject({
  matchExpressions: z.array(nodeSelectorRequirement).nullish(),
  matchFields: z.array(nodeSelectorRequirement).nullish(),
});

const containerShape = z.looseObject({
  image: z.string().nullish(),
  command: z.array(z.string()).nullish(),
  args: z.array(z.string()).nullish(),
});

export const podSpecShape = z.looseObject({
  containers: z.array(containerShape).nullish(),
  serviceAccountName: z.string().nullish(),
  serviceAccount: z.string().nullish(),
  nodeSelector: stringMap.nullish(),
  affinity: z
    .looseObject({
      nodeAffinity: z
        .looseObject({
          requiredDuringSchedulingIgnoredDuringExecution: z
            .looseObject({ nodeSelectorTerms: z.array(nodeSelectorTermShape) })
            .nullish(),
        })
        .nullish(),
    })
    .nullish(),
});

const podTemplateShape = z.looseObject({ spec: podSpecShape });

export const deploymentShape = z.looseObject({
  metadata: metadataShape,
  spec: z.looseObject({
    replicas: count.nullish(),
    strategy: z
      .looseObject({
        type: z.string().nullish(),
        rollingUpdate: z.looseObject({ maxSurge: intOrPercent.nullish() }).nullish(),
      })
      .nullish(),
    template: podTemplateShape,
  }),
});

export const replicatedShape = z.looseObject({
  metadata: metadataShape,
  spec: z.looseObject({ replicas: count.nullish(), template: podTemplateShape.nullish() }),
});

export const jobSpecShape = z.looseObject({
  parallelism: count.nullish(),
  completions: count.nullish(),
  suspend: z.boolean().nullish(),
  template: podTemplateShape,
});

export const jobShape = z.looseObject({ metadata: metadataShape, spec: jobSpecShape });

export const cronJobShape = z.looseObject({
  metadata: metadataShape,
  spec: z.looseObject({
    suspend: z.boolean().nullish(),
    concurrencyPolicy: z.enum(['Allow', 'Forbid', 'Replace']).nullish(),
    jobTemplate: z.looseObject({ spec: jobSpecShape }),
  }),
});

export const daemonSetShape = z.looseObject({
  metadata: metadataShape,
  spec: z.looseObject({
    template: podTemplateShape,
    updateStrategy: z
      .looseObject({
        type: z.string().nullish(),
        rollingUpdate: z.looseObject({ maxSurge: intOrPercent.nullish() }).nullish(),
      })
      .nullish(),
  }),
});

export const podShape = z.looseObject({ metadata: metadataShape, spec: podSpecShape });

export const hpaShape = z.looseObject({
  metadata: metadataShape,
  spec: z.looseObject({
    minReplicas: count.nullish(),
    maxReplicas: z.number().int().min(0),
    scaleTargetRef: z.looseObject({ apiVersion: z.string().nullish(), kind: z.string(), name: z.string() }),
  }),
});

export const scaleShape = z.looseObject({
  metadata: metadataShape,
  // `spec` is `{}` at 0 replicas: the field is omitted when zero.
  spec: z.looseObject({ replicas: count.nullish() }).nullish(),
});

/** Any object: only metadata is read, as for custom resources mapped by path. */
export const anyObjectShape = z.looseObject({ metadata: metadataShape.nullish() });

export type PodSpec = z.infer<typeof podSpecShape>;
export type NodeSelectorTerm = z.infer<typeof nodeSelectorTermShape>;
export type Metadata = z.infer<typeof metadataShape>;
