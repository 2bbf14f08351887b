import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

// No Docker engine runs here, so the Dockerfile is checked by reading it.
const dockerfile = readFileSync(new URL('../Dockerfile', import.meta.url), 'utf8');
const instructions = dockerfile
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l !== '' && !l.startsWith('#'));

describe('Dockerfile', () => {
  it('builds on an official Node.js 24 image in every stage', () => {
    const froms = instructions.filter((l) => l.startsWith('FROM '));
    expect(froms.length).toBeGreaterThan(0);
    for (const from of froms) expect(from).toMatch(/^FROM node:24[-.\w]*( AS \w+)?$/);
  });

  it('installs production dependencies from the lockfile and runs as the unprivileged user', () => {
    expect(instructions).toContain('COPY package.json package-lock.json ./');
    expect(instructions.some((l) => /^RUN npm ci --omit=dev/.test(l))).toBe(true);
    const user = instructions.findLast((l) => l.startsWith('USER '));
    expect(user).toBe('USER node');
  });

  it('starts the server from src/main.ts and copies what it imports', () => {
    expect(instructions).toContain('ENTRYPOINT ["node", "src/main.ts"]');
    expect(instructions).toContain('COPY src ./src');
    expect(instructions).toContain('EXPOSE 8443 8080');
  });
});
