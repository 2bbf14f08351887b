import type { NodeSelectorTerm, PodSpec } from './object-shapes.ts';

/** A node as the guard knows it: its name and labels. */
export interface NodeInfo {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
}

/**
 * How many nodes a DaemonSet's pods may run on: the nodes that satisfy its nodeSelector
 * and its required node affinity. Taints and tolerations are not considered, so the
 * count errs on the side of more instances.
 */
export function eligibleNodeCount(spec: PodSpec, nodes: readonly NodeInfo[]): number {
  let n = 0;
  for (const node of nodes) if (nodeEligible(spec, node)) n++;
  return n;
}

function nodeEligible(spec: PodSpec, node: NodeInfo): boolean {
  for (const [key, value] of Object.entries(spec.nodeSelector ?? {})) {
    if (node.labels[key] !== value) return false;
  }
  const terms = spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms;
  // Terms are ORed; an empty list of terms matches no node, as in the scheduler.
  if (terms) return terms.some((t) => termMatches(t, node));
  return true;
}

function termMatches(term: NodeSelectorTerm, node: NodeInfo): boolean {
  const expressions = term.matchExpressions ?? [];
  const fields = term.matchFields ?? [];
  if (expressions.length === 0 && fields.length === 0) return false;
  return (
    expressions.every((e) => requirementMatches(e.operator, node.labels[e.key], e.values ?? [])) &&
    fields.every((f) => f.key === 'metadata.name' && requirementMatches(f.operator, node.name, f.values ?? []))
  );
}

function requirementMatches(operator: string, actual: string | undefined, values: readonly string[]): boolean {
  switch (operator) {
    case 'In':
      return actual !== undefined && values.includes(actual);
    case 'NotIn':
      return actual === undefined || !values.includes(actual);
    case 'Exists':
      return actual !== undefined;
    case 'DoesNotExist':
      return actual === undefined;
    case 'Gt':
    case 'Lt': {
      const bound = Number.parseInt(values[0] ?? '', 10);
      const have = Number.parseInt(actual ?? '', 10);
      if (Number.isNaN(bound) || Number.isNaN(have)) return false;
      return operator === 'Gt' ? have > bound : have < bound;
    }
    default:
      return false;
  }
}

/** Nodes standing in for a cluster's, when the guard runs without one: `count` plain Linux nodes. */
export function placeholderNodes(count: number): NodeInfo[] {
  return Array.from({ length: count }, (_, i) => ({
    name: `node-${i + 1}`,
    labels: {
      'kubernetes.io/hostname': `node-${i + 1}`,
      'kubernetes.io/os': 'linux',
      'kubernetes.io/arch': 'amd64',
    },
  }));
}
