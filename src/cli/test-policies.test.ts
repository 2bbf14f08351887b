import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runPolicyTests } from './test-policies.ts';

const root = resolve(import.meta.dirname, '../..');

function collect() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (l: string) => out.push(l), err: (l: string) => err.push(l) }, out, err };
}

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rg-cases-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const scaleCase = (expectation: string) => `apiVersion: replica-guard.io/v1alpha1
kind: PolicyTest
policies: ${join(root, 'policies/support-agents.yaml')}
cases:
  - name: scale to 10
    review: ${join(root, 'test/fixtures/admission/deployment-scale-agent-10.json')}
    facts: { need: 3 }
    expect: ${expectation}
`;

describe('replica-guard test', () => {
  it('passes the example cases shipped with the policies', async () => {
    const { io, out } = collect();
    expect(await runPolicyTests([join(root, 'policies/cases')], io)).toBe(0);
    expect(out.at(-1)).toMatch(/^\d+ passed, 0 failed$/);
    expect(out.filter((l) => l.startsWith('PASS')).length).toBeGreaterThanOrEqual(10);
  });

  it('exits 1 and says why when a case does not hold', async () => {
    await writeFile(join(dir, 'wrong.yaml'), scaleCase('{ allowed: true, limit: step, message: "nope" }'));
    const { io, out } = collect();
    expect(await runPolicyTests([dir], io)).toBe(1);
    expect(out).toContain(`FAIL ${join(dir, 'wrong.yaml')}: scale to 10`);
    expect(out.join('\n')).toMatch(/expected allowed, got denied: replica-guard denied scaling Deployment agents\/agent-web from 2 to 10/);
    expect(out.join('\n')).toMatch(/expected the limit step, got need/);
    expect(out.join('\n')).toMatch(/expected the message to contain "nope"/);
    expect(out.at(-1)).toBe('0 passed, 1 failed');
  });

  it('passes a right case', async () => {
    await writeFile(join(dir, 'right.yaml'), scaleCase('{ allowed: false, limit: need, message: "allows at most 4" }'));
    const { io } = collect();
    expect(await runPolicyTests([join(dir, 'right.yaml')], io)).toBe(0);
  });

  it('a mutating case under policies none of which clamps is allowed without a decision, as the webhook answers it', async () => {
    const mutating = (expectation: string) =>
      scaleCase(expectation).replace('  - name: scale to 10\n', '  - name: scale to 10\n    webhook: mutate\n');
    await writeFile(join(dir, 'mutate.yaml'), mutating('{ allowed: true, message: "allows without a decision" }'));
    expect(await runPolicyTests([join(dir, 'mutate.yaml')], collect().io)).toBe(0);
    // No limit is named: nothing was judged.
    await writeFile(join(dir, 'limit.yaml'), mutating('{ allowed: true, limit: need }'));
    const { io, out } = collect();
    expect(await runPolicyTests([join(dir, 'limit.yaml')], io)).toBe(1);
    expect(out.join('\n')).toMatch(/expected the limit need/);
  });

  it('exits 2 for a case file that does not validate, naming the field', async () => {
    await writeFile(join(dir, 'bad.yaml'), scaleCase('{ allowed: maybe }'));
    const { io, err } = collect();
    expect(await runPolicyTests([dir], io)).toBe(2);
    expect(err.join('\n')).toMatch(/bad\.yaml: cases\.0\.expect\.allowed: /);
  });

  it('exits 2 when no case file is found', async () => {
    const { io, err } = collect();
    expect(await runPolicyTests([join(dir, 'none')], io)).toBe(2);
    expect(err.join()).toMatch(/no case files/);
  });
});
