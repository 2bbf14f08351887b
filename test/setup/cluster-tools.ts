import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Where the real cluster parts of the test tier live: built from the Go modules pinned in
 * test/cluster (kube-apiserver, kubectl and an etcd started through its embed package)
 * and test/cluster/helm, into a cache outside the repository so that a second run
 * starts at once.
 */

const CLUSTER_MODULE = fileURLToPath(new URL('../cluster/', import.meta.url));
const HELM_MODULE = join(CLUSTER_MODULE, 'helm');

/** The cache root: `$RG_TEST_CACHE`, else `$XDG_CACHE_HOME/replica-guard-test`, else `~/.cache/replica-guard-test`. */
export function cacheRoot(): string {
  const explicit = process.env.RG_TEST_CACHE;
  if (explicit !== undefined && explicit !== '') return explicit;
  const xdg = process.env.XDG_CACHE_HOME;
  return join(xdg !== undefined && xdg !== '' ? xdg : join(homedir(), '.cache'), 'replica-guard-test');
}

/** The version a go.mod requires a module at. */
function requiredVersion(goMod: string, module: string): string {
  const pattern = new RegExp(`^\\s*(?:require\\s+)?${module.replaceAll('.', '\\.')}\\s+(v\\S+)`, 'm');
  const found = pattern.exec(goMod)?.[1];
  if (found === undefined) throw new Error(`no version of ${module} in its go.mod`);
  return found;
}

/**
 * A short hash of what decides a build's output (the module's pinned files and the build
 * recipe), so that a changed pin or flag rebuilds instead of reusing a stale binary.
 */
function contentKey(dir: string, files: readonly string[], recipe: unknown): string {
  const hash = createHash('sha256').update(JSON.stringify(recipe)).update('\0');
  for (const f of files) hash.update(f).update('\0').update(readFileSync(join(dir, f))).update('\0');
  return hash.digest('hex').slice(0, 10);
}

/** One build: a Go module, the packages it builds, and the cache folder they land in. */
export interface ToolBuild {
  /** What the progress lines call it. */
  readonly label: string;
  /** The release the module pins. */
  readonly version: string;
  /** The Go module folder the build runs in. */
  readonly moduleDir: string;
  /** Output file name → Go package path. */
  readonly binaries: Readonly<Record<string, string>>;
  /** Passed to the linker for every binary of the build. */
  readonly ldflags: string;
  /** The cache folder, keyed by version and by the module's pinned content. */
  readonly dir: string;
}

/** The builds the tier needs. */
export function toolBuilds(): readonly ToolBuild[] {
  const clusterMod = readFileSync(join(CLUSTER_MODULE, 'go.mod'), 'utf8');
  const kubernetes = requiredVersion(clusterMod, 'k8s.io/kubernetes');
  const helmMod = readFileSync(join(HELM_MODULE, 'go.mod'), 'utf8');
  const helm = requiredVersion(helmMod, 'helm.sh/helm/v4');
  const kubeBinaries = {
    'kube-apiserver': 'k8s.io/kubernetes/cmd/kube-apiserver',
    kubectl: 'k8s.io/kubernetes/cmd/kubectl',
    etcd: './etcd',
  };
  // A module build leaves the version at v0.0.0-master: the API server would report it in
  // /version, and helm would refuse the chart's kubeVersion. Releases set it so.
  const [major, minor] = kubernetes.replace(/^v/, '').split('.');
  const kubeLdflags = ['-s -w', ...['k8s.io/component-base/version', 'k8s.io/client-go/pkg/version'].flatMap((pkg) => [
    `-X ${pkg}.gitVersion=${kubernetes}`,
    `-X ${pkg}.gitMajor=${major}`,
    `-X ${pkg}.gitMinor=${minor}`,
    `-X ${pkg}.gitTreeState=clean`,
  ])].join(' ');
  const helmBinaries = { helm: 'helm.sh/helm/v4/cmd/helm' };
  // A module build leaves helm's version at its major.minor default; releases set it so.
  const helmLdflags = `-s -w -X helm.sh/helm/v4/internal/version.version=${helm}`;
  return [
    {
      label: `kube-apiserver, kubectl and etcd (k8s.io/kubernetes ${kubernetes})`,
      version: kubernetes,
      moduleDir: CLUSTER_MODULE,
      binaries: kubeBinaries,
      ldflags: kubeLdflags,
      dir: join(
        cacheRoot(),
        `kubernetes-${kubernetes}-${contentKey(CLUSTER_MODULE, ['go.mod', 'go.sum', 'etcd/main.go'], [kubeBinaries, kubeLdflags])}`,
      ),
    },
    {
      label: `helm ${helm}`,
      version: helm,
      moduleDir: HELM_MODULE,
      binaries: helmBinaries,
      ldflags: helmLdflags,
      dir: join(cacheRoot(), `helm-${helm}-${contentKey(HELM_MODULE, ['go.mod', 'go.sum'], [helmBinaries, helmLdflags])}`),
    },
  ];
}

/** Absolute paths of the built binaries. */
export interface ClusterTools {
  readonly kubeApiserver: string;
  readonly kubectl: string;
  readonly etcd: string;
  readonly helm: string;
  readonly kubernetesVersion: string;
  readonly helmVersion: string;
}

/** The binaries' paths (built or not: `npm test` builds them first, through ensure-cluster-tools.ts). */
export function clusterTools(): ClusterTools {
  const [kube, helm] = toolBuilds();
  if (kube === undefined || helm === undefined) throw new Error('toolBuilds() lists the kubernetes build, then helm');
  return {
    kubeApiserver: join(kube.dir, 'kube-apiserver'),
    kubectl: join(kube.dir, 'kubectl'),
    etcd: join(kube.dir, 'etcd'),
    helm: join(helm.dir, 'helm'),
    kubernetesVersion: kube.version,
    helmVersion: helm.version,
  };
}
