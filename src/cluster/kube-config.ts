import { KubeConfig } from '@kubernetes/client-node';
import { connectionFromKubeConfig, type KubeConnection } from './kube-http.ts';

/** Where the cluster's address and credentials come from. */
export interface KubeConfigSource {
  /** A kubeconfig file (`--kubeconfig`); absent: `$KUBECONFIG`, `~/.kube/config`, then in-cluster. */
  readonly kubeconfig?: string | undefined;
  /** A context of that kubeconfig other than its current one. */
  readonly context?: string | undefined;
  /** Use the pod's service account even when a kubeconfig exists. */
  readonly inCluster?: boolean | undefined;
}

/**
 * Loads a connection the way kubectl finds its cluster. Kept apart from kube-http.ts so
 * that importing the reflectors does not load @kubernetes/client-node; call it from
 * main.ts, the one place that reads files and the environment.
 */
export function loadKubeConnection(source: KubeConfigSource = {}): KubeConnection {
  const kc = new KubeConfig();
  if (source.inCluster) kc.loadFromCluster();
  else if (source.kubeconfig) kc.loadFromFile(source.kubeconfig);
  else kc.loadFromDefault();
  if (source.context) kc.setCurrentContext(source.context);
  return connectionFromKubeConfig(kc);
}
