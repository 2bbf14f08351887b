import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import YAML from 'yaml';

/**
 * Writes a kubeconfig for an API server at `server` with a bearer token, as an operator's
 * would be, and returns its path. A plain-HTTP server (the fake, or kubectl proxy) needs
 * `insecure-skip-tls-verify`, which @kubernetes/client-node requires before it speaks HTTP.
 */
export async function writeKubeconfig(dir: string, server: string, token = 'operator-token', name = 'kubeconfig'): Promise<string> {
  const path = join(dir, name);
  const cluster: Record<string, unknown> = { server };
  if (server.startsWith('http:')) cluster['insecure-skip-tls-verify'] = true;
  await writeFile(
    path,
    YAML.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'test', cluster }],
      users: [{ name: 'operator', user: { token } }],
      contexts: [{ name: 'test', context: { cluster: 'test', user: 'operator' } }],
      'current-context': 'test',
    }),
  );
  return path;
}
