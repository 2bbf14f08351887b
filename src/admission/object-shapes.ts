import { z } from 'zod';

/**
 * Schemas of the fields the guard reads, per kind. Everything else in an object is
 * accepted and left out of what they return: copying a whole object (its managedFields,
 * its status) on every review and watch event would cost more than reading it. Only
 * {@link anyObjectShape} keeps the rest, which paths of custom resources read. A field
 * the guard reads with the wrong type is an error (HTTP 400), because counting it as
 * absent could hide instances.
 */

const count = z.number().int().min(0);
const intOrPercent = z.union([z.number().int().min(0), z.string().regex(/^\d+%$/, 'a percentage such as "25%"')]);
const stringMap = z.record(z.string(), z.string());

export const metadataShape = z.object({
  name: z.string().optional(),
  generateName: z.string().optional(),
  namespace: z.string().optional(),
  uid: z.string().optional(),
  annotations: stringMap.nullish(),
});

const nodeSelectorRequirement = z.object({
  key: z.string(),
  operator: z.enum(['In', 'NotIn', 'Exists', 'DoesNotExist', 'Gt', 'Lt']),
  values: z.array(z.string()).nullish(),
});

export const nodeSelectorTermShape = z.object({
  matchExpressions: z.array(nodeSelectorRequirement).nullish(),
  matchFields: z.array(nodeSelectorRequirement).nullish(),
});

const containerShape = z.object({
  image: z.string().nullish(),
  command: z.array(z.string()).nullish(),
  args: z.array(z.string()).nullish(),
});

export const podSpecShape = z.object({
  containers: z.array(containerShape).nullish(),
  serviceAccountName: z.string().nullish(),
  serviceAccount: z.string().nullish(),
  nodeSelector: stringMap.nullish(),
  affinity: z
    .object({
      nodeAffinity: z
        .object({
          requiredDuringSchedulingIgnoredDuringExecution: z
            .object({ nodeSelectorTerms: z.array(nodeSelectorTermShape) })
            .nullish(),
        })
        .nullish(),
    })
    .nullish(),
});

const podTemplateShape = z.object({ spec: podSpecShape });

export const deploymentShape = z.object({
  metadata: metadataShape,
  spec: z.object({
    replicas: count.nullish(),
    strategy: z
      .object({
        type: z.string().nullish(),
        rollingUpdate: z.object({ maxSurge: intOrPercent.nullish() }).nullish(),
      })
      .nullish(),
    template: podTemplateShape,
  }),
});

export const replicatedShape = z.object({
  metadata: metadataShape,
  spec: z.object({ replicas: count.nullish(), template: podTemplateShape.nullish() }),
});

export const jobSpecShape = z.object({
  parallelism: count.nullish(),
  completions: count.nullish(),
  suspend: z.boolean().nullish(),
  template: podTemplateShape,
});

export const jobShape = z.object({ metadata: metadataShape, spec: jobSpecShape });

export const cronJobShape = z.object({
  metadata: metadataShape,
  spec: z.object({
    suspend: z.boolean().nullish(),
    concurrencyPolicy: z.enum(['Allow', 'Forbid', 'Replace']).nullish(),
    jobTemplate: z.object({ spec: jobSpecShape }),
  }),
});

export const daemonSetShape = z.object({
  metadata: metadataShape,
  spec: z.object({
    template: podTemplateShape,
    updateStrategy: z
      .object({
        type: z.string().nullish(),
        rollingUpdate: z.object({ maxSurge: intOrPercent.nullish() }).nullish(),
      })
      .nullish(),
  }),
});

export const podShape = z.object({ metadata: metadataShape, spec: podSpecShape });

export const hpaShape = z.object({
  metadata: metadataShape,
  spec: z.object({
    minReplicas: count.nullish(),
    maxReplicas: z.number().int().min(0),
    scaleTargetRef: z.object({ apiVersion: z.string().nullish(), kind: z.string(), name: z.string() }),
  }),
});

export const scaleShape = z.object({
  metadata: metadataShape,
  // `spec` is `{}` at 0 replicas: the field is omitted when zero.
  spec: z.object({ replicas: count.nullish() }).nullish(),
});

/** Any object: only metadata is read, as for custom resources mapped by path. */
export const anyObjectShape = z.looseObject({ metadata: metadataShape.nullish() });

export type PodSpec = z.infer<typeof podSpecShape>;
export type NodeSelectorTerm = z.infer<typeof nodeSelectorTermShape>;
export type Metadata = z.infer<typeof metadataShape>;
