import { readdir, readFile, stat } from 'node:fs/promises';
import { dirname, extname, join, resolve as resolvePath } from 'node:path';
import YAML from 'yaml';
import { evaluateCase } from '../admission/evaluate-case.ts';
import { GuardError } from '../errors.ts';
import { type PolicyCase, policyTestFileSchema } from '../policy/policy-cases.ts';
import { formatProblem, loadPolicyPaths } from '../policy/policy-loader.ts';
import type { CliIo } from './check.ts';

/** The cases run when none are named, relative to the working directory. */
export const DEFAULT_CASES_PATH = 'policies/cases/';

/**
 * `replica-guard test [paths...]`: runs policy cases offline (the way `kyverno test` and
 * `gator verify` serve platform teams). Each case gives a review, the facts a cluster
 * would supply, and the expected outcome. Exit code: 0 when every case passes, 1 when
 * any fails, 2 when a case file or its policies cannot be read.
 */
export async function runPolicyTests(paths: readonly string[], io: CliIo): Promise<number> {
  const files = await caseFiles(paths.length > 0 ? paths : [DEFAULT_CASES_PATH]);
  if (files.length === 0) {
    io.err(`no case files (*.yaml, *.yml) found in ${(paths.length > 0 ? paths : [DEFAULT_CASES_PATH]).join(', ')}`);
    return 2;
  }
  let passed = 0;
  let failed = 0;
  let broken = false;
  for (const file of files) {
    const result = await runFile(file, io);
    if (result === 'broken') broken = true;
    else {
      passed += result.passed;
      failed += result.failed;
    }
  }
  io.out(`${passed} passed, ${failed} failed`);
  if (broken) return 2;
  return failed > 0 ? 1 : 0;
}

async function runFile(file: string, io: CliIo): Promise<{ passed: number; failed: number } | 'broken'> {
  let parsed: unknown;
  try {
    parsed = YAML.parse(await readFile(file, 'utf8'));
  } catch (err) {
    io.err(`${file}: cannot read: ${messageOf(err)}`);
    return 'broken';
  }
  const doc = policyTestFileSchema.safeParse(parsed);
  if (!doc.success) {
    for (const issue of doc.error.issues) io.err(`${file}: ${issue.path.join('.') || '(document)'}: ${issue.message}`);
    return 'broken';
  }
  const base = dirname(file);
  const policyPaths = (Array.isArray(doc.data.policies) ? doc.data.policies : [doc.data.policies]).map((p) => resolvePath(base, p));
  const load = await loadPolicyPaths(policyPaths);
  const errors = load.problems.filter((p) => p.severity === 'error');
  if (errors.length > 0 || load.policies.length === 0) {
    for (const p of errors) io.err(formatProblem(p));
    if (load.policies.length === 0) io.err(`${file}: no policies found in ${policyPaths.join(', ')}`);
    return 'broken';
  }
  let passed = 0;
  let failed = 0;
  for (const c of doc.data.cases) {
    const mismatches = await runCase(c, base, load.policies);
    if (mismatches.length === 0) {
      passed++;
      io.out(`PASS ${file}: ${c.name}`);
    } else {
      failed++;
      io.out(`FAIL ${file}: ${c.name}`);
      for (const m of mismatches) io.out(`     ${m}`);
    }
  }
  return { passed, failed };
}

async function runCase(c: PolicyCase, base: string, policies: Parameters<typeof evaluateCase>[2]): Promise<string[]> {
  let review: unknown;
  try {
    review = typeof c.review === 'string' ? YAML.parse(await readFile(resolvePath(base, c.review), 'utf8')) : c.review;
  } catch (err) {
    return [`cannot read the review ${String(c.review)}: ${messageOf(err)}`];
  }
  let outcome;
  try {
    outcome = evaluateCase(review, c.webhook, policies, c.facts);
  } catch (err) {
    return [err instanceof GuardError ? `the review is invalid: ${err.message}` : `evaluation failed: ${messageOf(err)}`];
  }
  const mismatches: string[] = [];
  const e = c.expect;
  if (outcome.allowed !== e.allowed) {
    mismatches.push(`expected ${e.allowed ? 'allowed' : 'denied'}, got ${outcome.allowed ? 'allowed' : 'denied'}: ${outcome.message}`);
  }
  if (e.patched !== undefined && outcome.patched !== e.patched) {
    mismatches.push(`expected a patch to ${e.patched}, got ${outcome.patched === undefined ? 'no patch' : outcome.patched}`);
  }
  if (e.limit !== undefined && outcome.limit !== e.limit) {
    mismatches.push(`expected the limit ${e.limit}, got ${outcome.limit ?? 'none'}`);
  }
  if (e.message !== undefined && !outcome.message.includes(e.message)) {
    mismatches.push(`expected the message to contain ${JSON.stringify(e.message)}, got ${JSON.stringify(outcome.message)}`);
  }
  return mismatches;
}

async function caseFiles(paths: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const p of paths) {
    const info = await stat(p).catch(() => undefined);
    if (info?.isDirectory()) {
      const names = (await readdir(p)).filter((n) => !n.startsWith('.') && ['.yaml', '.yml'].includes(extname(n))).sort();
      out.push(...names.map((n) => join(p, n)));
    } else if (info?.isFile()) {
      out.push(p);
    }
  }
  return out;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
