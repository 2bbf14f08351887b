/**
 * What marks a clone: the same service account name, the same image repository (whatever
 * the tag or digest) and the same command and args, container by container.
 */
export interface PodFingerprint {
  /** Comparable key of the whole fingerprint. */
  readonly key: string;
  /** The image repository, for a policy's list of images that never mark clones. */
  readonly image: string;
}

/** A container as the fingerprint reads it. */
export interface ContainerShape {
  readonly image?: string | null | undefined;
  readonly command?: readonly string[] | null | undefined;
  readonly args?: readonly string[] | null | undefined;
}

/** `registry:5000/team/agent:1.2@sha256:...` → `registry:5000/team/agent`. */
export function imageRepository(image: string): string {
  const noDigest = image.split('@')[0] ?? image;
  const slash = noDigest.lastIndexOf('/');
  const colon = noDigest.lastIndexOf(':');
  // A colon after the last slash is a tag; before it, a registry port.
  return colon > slash ? noDigest.slice(0, colon) : noDigest;
}

/** One fingerprint per container of a pod template. */
export function podFingerprints(serviceAccount: string, containers: readonly ContainerShape[]): PodFingerprint[] {
  return containers
    .filter((c) => typeof c.image === 'string' && c.image !== '')
    .map((c) => {
      const image = imageRepository(c.image ?? '');
      return { image, key: JSON.stringify([serviceAccount, image, c.command ?? [], c.args ?? []]) };
    });
}
