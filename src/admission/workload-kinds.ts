import type { z } from 'zod';
import type { ClampTarget, ExtraInstances, InstanceCount } from '../core/types.ts';
import { eligibleNodeCount, type NodeInfo } from './node-eligibility.ts';
import {
  cronJobShape,
  daemonSetShape,
  deploymentShape,
  hpaShape,
  jobShape,
  type PodSpec,
  podShape,
  replicatedShape,
} from './object-shapes.ts';

/** Facts counting may need beyond the object itself. */
export interface CountingFacts {
  /** The cluster's nodes; undefined when unknown (a DaemonSet cannot be counted then). */
  readonly nodes: readonly NodeInfo[] | undefined;
}

/** A pod template inside an object, with where it sits. */
export interface PodTemplate {
  readonly field: string;
  readonly spec: PodSpec;
}

/** The result of counting: the count, or the name of the missing fact. */
export type CountResult = { readonly count: InstanceCount } | { readonly unknown: string };

/** How the guard reads one built-in kind. */
export interface WorkloadKind {
  readonly group: string;
  readonly resource: string;
  readonly kind: string;
  /** Whether writes of this kind create a workload (an HPA only bounds one). */
  readonly isWorkload: boolean;
  /** Whether the kind has a `scale` subresource. */
  readonly scalable: boolean;
  readonly shape: z.ZodType;
  count(object: never, facts: CountingFacts): CountResult;
  podTemplates(object: never): PodTemplate[];
  clamp(object: never): ClampTarget | null;
}

type Shape<T extends z.ZodType> = z.infer<T>;

const NONE: ExtraInstances = { type: 'none' };

/** Reads a surge setting (an integer or a percentage) as the controllers resolve it. */
export function surgeOf(value: number | string | null | undefined, fallback: number | string): ExtraInstances {
  const v = value ?? fallback;
  if (typeof v === 'number') return v === 0 ? NONE : { type: 'surge-fixed', instances: v };
  const percent = Number.parseInt(v, 10);
  return percent === 0 ? NONE : { type: 'surge-percent', percent };
}

function replicasClamp(spec: { replicas?: number | null | undefined }): ClampTarget {
  return { path: '/spec/replicas', present: spec.replicas !== undefined && spec.replicas !== null };
}

/** A Job's running pods: min(parallelism, completions), 0 while suspended. */
export function jobSteady(spec: {
  parallelism?: number | null | undefined;
  completions?: number | null | undefined;
  suspend?: boolean | null | undefined;
}): number {
  if (spec.suspend === true) return 0;
  const parallelism = spec.parallelism ?? 1;
  return spec.completions === undefined || spec.completions === null
    ? parallelism
    : Math.min(parallelism, spec.completions);
}

const deployment: WorkloadKind = {
  group: 'apps',
  resource: 'deployments',
  kind: 'Deployment',
  isWorkload: true,
  scalable: true,
  shape: deploymentShape,
  count(o: Shape<typeof deploymentShape>) {
    const strategy = o.spec.strategy;
    const extra = strategy?.type === 'Recreate' ? NONE : surgeOf(strategy?.rollingUpdate?.maxSurge, '25%');
    return { count: { steady: o.spec.replicas ?? 1, extra } };
  },
  podTemplates: (o: Shape<typeof deploymentShape>) => [{ field: 'spec.template.spec', spec: o.spec.template.spec }],
  clamp: (o: Shape<typeof deploymentShape>) => replicasClamp(o.spec),
};

function replicated(group: string, resource: string, kind: string): WorkloadKind {
  return {
    group,
    resource,
    kind,
    isWorkload: true,
    scalable: true,
    shape: replicatedShape,
    count: (o: Shape<typeof replicatedShape>) => ({ count: { steady: o.spec.replicas ?? 1, extra: NONE } }),
    podTemplates: (o: Shape<typeof replicatedShape>) =>
      o.spec.template ? [{ field: 'spec.template.spec', spec: o.spec.template.spec }] : [],
    clamp: (o: Shape<typeof replicatedShape>) => replicasClamp(o.spec),
  };
}

const job: WorkloadKind = {
  group: 'batch',
  resource: 'jobs',
  kind: 'Job',
  isWorkload: true,
  scalable: false,
  shape: jobShape,
  count: (o: Shape<typeof jobShape>) => ({ count: { steady: jobSteady(o.spec), extra: NONE } }),
  podTemplates: (o: Shape<typeof jobShape>) => [{ field: 'spec.template.spec', spec: o.spec.template.spec }],
  clamp: (o: Shape<typeof jobShape>) => ({
    path: '/spec/parallelism',
    present: o.spec.parallelism !== undefined && o.spec.parallelism !== null,
  }),
};

const cronJob: WorkloadKind = {
  group: 'batch',
  resource: 'cronjobs',
  kind: 'CronJob',
  isWorkload: true,
  scalable: false,
  shape: cronJobShape,
  count(o: Shape<typeof cronJobShape>) {
    const steady = o.spec.suspend === true ? 0 : jobSteady(o.spec.jobTemplate.spec);
    // Allow is the default concurrencyPolicy; Replace stops the old run before the new one.
    const allow = (o.spec.concurrencyPolicy ?? 'Allow') === 'Allow';
    return { count: { steady, extra: allow ? { type: 'cronjob-allow' } : NONE } };
  },
  podTemplates: (o: Shape<typeof cronJobShape>) => [
    { field: 'spec.jobTemplate.spec.template.spec', spec: o.spec.jobTemplate.spec.template.spec },
  ],
  clamp: (o: Shape<typeof cronJobShape>) => ({
    path: '/spec/jobTemplate/spec/parallelism',
    present: o.spec.jobTemplate.spec.parallelism !== undefined && o.spec.jobTemplate.spec.parallelism !== null,
  }),
};

const daemonSet: WorkloadKind = {
  group: 'apps',
  resource: 'daemonsets',
  kind: 'DaemonSet',
  isWorkload: true,
  scalable: false,
  shape: daemonSetShape,
  count(o: Shape<typeof daemonSetShape>, facts: CountingFacts): CountResult {
    if (facts.nodes === undefined) return { unknown: 'the cluster nodes are unknown' };
    const strategy = o.spec.updateStrategy;
    const extra = strategy?.type === 'OnDelete' ? NONE : surgeOf(strategy?.rollingUpdate?.maxSurge, 0);
    return { count: { steady: eligibleNodeCount(o.spec.template.spec, facts.nodes), extra } };
  },
  podTemplates: (o: Shape<typeof daemonSetShape>) => [{ field: 'spec.template.spec', spec: o.spec.template.spec }],
  clamp: () => null,
};

const pod: WorkloadKind = {
  group: '',
  resource: 'pods',
  kind: 'Pod',
  isWorkload: true,
  scalable: false,
  shape: podShape,
  count: () => ({ count: { steady: 1, extra: NONE } }),
  podTemplates: (o: Shape<typeof podShape>) => [{ field: 'spec', spec: o.spec }],
  clamp: () => null,
};

const hpa: WorkloadKind = {
  group: 'autoscaling',
  resource: 'horizontalpodautoscalers',
  kind: 'HorizontalPodAutoscaler',
  isWorkload: false,
  scalable: false,
  shape: hpaShape,
  // An HPA may raise its target up to maxReplicas: that ceiling is what it grants.
  count: (o: Shape<typeof hpaShape>) => ({ count: { steady: o.spec.maxReplicas, extra: NONE } }),
  podTemplates: () => [],
  clamp: (o: Shape<typeof hpaShape>) => ({
    path: '/spec/maxReplicas',
    present: true,
    minimum: 1,
    companions: [{ path: '/spec/minReplicas', value: o.spec.minReplicas ?? 1 }],
  }),
};

/** The built-in kinds, keyed by `group/resource`. */
export const BUILT_IN_KINDS: ReadonlyMap<string, WorkloadKind> = new Map(
  [
    deployment,
    replicated('apps', 'replicasets', 'ReplicaSet'),
    replicated('apps', 'statefulsets', 'StatefulSet'),
    replicated('', 'replicationcontrollers', 'ReplicationController'),
    job,
    cronJob,
    daemonSet,
    pod,
    hpa,
  ].map((k) => [`${k.group}/${k.resource}`, k]),
);

/** Looks up a built-in kind by its API group and resource. */
export function builtInKind(group: string, resource: string): WorkloadKind | undefined {
  return BUILT_IN_KINDS.get(`${group}/${resource}`);
}
