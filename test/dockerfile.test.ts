import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

// No Docker engine runs here, so the Dockerfile is checked by reading it.
const read = (name: string) => readFileSync(new URL(`../${name}`, import.meta.url), 'utf8');
const instructionsOf = (text: string) =>
  text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
const instructions = instructionsOf(read('Dockerfile'));
/** The instructions of the last stage: what the running image is made of. */
const finalStage = instructions.slice(instructions.findLastIndex((l) => l.startsWith('FROM ')));

describe('Dockerfile', () => {
  it('builds on the official Node.js 24 image in every stage', () => {
    const froms = instructions.filter((l) => l.startsWith('FROM '));
    expect(froms.length).toBeGreaterThan(0);
    for (const from of froms) expect(from).toMatch(/^FROM node:24[-.\w]*( AS \w+)?$/);
  });

  it('installs production dependencies only, from the lockfile', () => {
    expect(instructions).toContain('COPY package.json package-lock.json ./');
    const installs = instructions.filter((l) => /^RUN .*npm (ci|install)/.test(l));
    expect(installs).toHaveLength(1);
    expect(installs[0]).toMatch(/npm ci --omit=dev/);
    // The final stage takes node_modules from the install stage, nothing else from npm.
    expect(finalStage.some((l) => /npm (ci|install)/.test(l))).toBe(false);
    expect(finalStage).toContain('COPY --from=deps /app/node_modules ./node_modules');
  });

  it('runs as a numeric non-root user, which Kubernetes can verify for runAsNonRoot', () => {
    const user = finalStage.findLast((l) => l.startsWith('USER '));
    const match = /^USER (\d+)(?::(\d+))?$/.exec(user ?? '');
    expect(match, `${user} must be numeric`).not.toBeNull();
    expect(Number(match?.[1])).toBeGreaterThan(0);
    expect(Number(match?.[2] ?? 1)).toBeGreaterThan(0);
  });

  it('runs on a read-only root filesystem: certificates in a mounted directory the user owns, outside /app', () => {
    const cmd = finalStage.find((l) => l.startsWith('CMD '));
    const args = JSON.parse(cmd?.slice(4) ?? '[]') as string[];
    const certs = args[args.indexOf('--certs') + 1] ?? '';
    expect(certs).toMatch(/^\/var\/run\//);
    expect(finalStage.some((l) => l.startsWith('RUN ') && l.includes(`mkdir -p ${certs}`) && l.includes(`chown 1000:1000 ${certs}`))).toBe(true);
    // Nothing after USER writes into the image.
    const afterUser = finalStage.slice(finalStage.findIndex((l) => l.startsWith('USER ')));
    expect(afterUser.some((l) => l.startsWith('RUN '))).toBe(false);
  });

  it('starts node on src/main.ts directly, in exec form, never through npm', () => {
    expect(finalStage).toContain('ENTRYPOINT ["node", "src/main.ts"]');
    expect(finalStage.filter((l) => /^(ENTRYPOINT|CMD) /.test(l)).join(' ')).not.toMatch(/npm|sh -c/);
    expect(finalStage).toContain('COPY src ./src');
    expect(finalStage).toContain('EXPOSE 8443 8080');
  });

  it('matches the chart: the same user and entry point', () => {
    const deployment = read('charts/replica-guard/templates/deployment.yaml');
    expect(deployment).toContain('runAsUser: 1000');
    expect(deployment).toContain('command: ["node", "/app/src/main.ts"]');
    expect(instructions).toContain('WORKDIR /app');
  });
});

describe('.dockerignore', () => {
  it('keeps local state, tests and the repository out of the build context', () => {
    const ignored = instructionsOf(read('.dockerignore'));
    for (const entry of ['.git', 'node_modules', 'certs', 'test', 'bench']) expect(ignored).toContain(entry);
    // What the image copies must not be ignored.
    for (const needed of ['src', 'bin', 'policies', 'package.json', 'package-lock.json']) expect(ignored).not.toContain(needed);
  });
});
