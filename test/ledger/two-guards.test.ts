import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { KubeLedger } from '../../src/cluster/kube-ledger.ts';
import { type AgentLedgerState, compactId, rateUsed, recordEpisodeKey, reserve } from '../../src/core/ledger-state.ts';
import { GuardError } from '../../src/errors.ts';
import { FakeApiServer } from '../fake-apiserver/fake-apiserver.ts';
import { counterValue, guardLedger, seeded, storedState } from './ledger-fixtures.ts';

// The property the shared ledger exists for (issue 3, item 4): two guard processes
// deciding for the same agent at once never both spend the same allowance. Each
// transaction spends one instance of a rate allowance R if the window still has room;
// bursts arrive at both processes, interleaved with jitter, and exactly R succeed.

let fake: FakeApiServer;
beforeEach(async () => {
  fake = await FakeApiServer.start();
  // A few milliseconds per request, as a real apiserver takes: the two processes' rounds
  // then overlap (both read, both write) instead of taking turns on an idle loopback.
  fake.setLatency(3);
});
afterEach(async () => {
  await fake.close();
});

const WINDOW = 5 * 60_000;

function twoGuards(options: Parameters<typeof guardLedger>[1]) {
  const a = guardLedger(fake, { random: seeded(1), ...options });
  const b = guardLedger(fake, { random: seeded(2), ...options });
  return [a, b] as const;
}

/**
 * Fires `calls` spends for one agent, alternating between the two ledgers, each after a
 * seeded random delay within `spreadMs`: spread out, the calls form many small batches
 * on both sides, so that the allowance is spent over many overlapping rounds rather than
 * in one batch that leaves nothing to fight over.
 */
async function burst(
  ledgers: readonly KubeLedger[],
  agent: string,
  allowance: number,
  calls: number,
  seed: number,
  spreadMs = calls,
): Promise<{ granted: string[]; conflicts: number; results: PromiseSettledResult<boolean>[] }> {
  const random = seeded(seed);
  const now = new Date();
  const granted: string[] = [];
  // The ConfigMap exists already: every write is a compare-and-swap PUT, not a create.
  const first = ledgers[0] as KubeLedger;
  await first.transact(agent, (s) => ({ result: undefined, next: recordEpisodeKey(s, 'warm-up', now, first.limits).state }));
  const spend = (ledger: KubeLedger, key: string) => (s: AgentLedgerState) =>
    rateUsed(s, WINDOW, now) < allowance
      ? { result: true, next: reserve(s, { key, workload: 'uid-w', steady: 1, addedInstances: 1 }, now, ledger.limits) }
      : { result: false, next: undefined };
  const results = await Promise.allSettled(
    Array.from({ length: calls }, async (_, i) => {
      const ledger = ledgers[i % ledgers.length] as KubeLedger;
      await new Promise((resolve) => setTimeout(resolve, random() * spreadMs));
      const key = `${agent}/spend-${i}`;
      const ok = await ledger.transact(agent, spend(ledger, key));
      if (ok) granted.push(key);
      return ok;
    }),
  );
  const conflicts = results.filter((r) => r.status === 'rejected').length;
  return { granted, conflicts, results };
}

describe('two guard processes against one API server', () => {
  it('admit exactly the rate allowance in total from a concurrent burst, never more', async () => {
    const [a, b] = twoGuards({ maxAttempts: 50, roundTimeoutMs: 20_000 });
    const cases = [
      { allowance: 1, calls: 10, seed: 11 },
      { allowance: 4, calls: 40, seed: 12 },
      { allowance: 7, calls: 7, seed: 13 },
      { allowance: 13, calls: 60, seed: 14 },
      { allowance: 30, calls: 100, seed: 15 },
    ];
    for (const [n, c] of cases.entries()) {
      const agent = `system:serviceaccount:agents:agent-${n}`;
      const out = await burst([a.ledger, b.ledger], agent, c.allowance, c.calls, c.seed);
      expect(out.conflicts, JSON.stringify(out.results.filter((r) => r.status === 'rejected'))).toBe(0);
      expect(out.granted).toHaveLength(c.allowance);
      // What the two processes granted is exactly what the shared state holds.
      const stored = storedState(fake, agent);
      expect(rateUsed(stored, WINDOW, new Date())).toBe(c.allowance);
      expect(stored.reservations.map((r) => r.key).sort()).toEqual(out.granted.map(compactId).sort());
    }
    // Both processes wrote, and the compare-and-swap path was exercised, not bypassed.
    const conflicts = (await counterValue(a.metrics.conflicts)) + (await counterValue(b.metrics.conflicts));
    expect(conflicts).toBeGreaterThan(0);
  });

  it('keep agents apart: bursts for two agents at once each admit their own allowance', async () => {
    const [a, b] = twoGuards({ maxAttempts: 50, roundTimeoutMs: 20_000 });
    const [one, two] = await Promise.all([
      burst([a.ledger, b.ledger], 'system:serviceaccount:agents:one', 5, 40, 21),
      burst([b.ledger, a.ledger], 'system:serviceaccount:agents:two', 9, 40, 22),
    ]);
    expect(one.granted).toHaveLength(5);
    expect(two.granted).toHaveLength(9);
  });

  it('never admit more when retries run out: the losers are denied with RG_ERR_LEDGER_CONFLICT', async () => {
    // One attempt only: every lost compare-and-swap turns into a denial.
    const [a, b] = twoGuards({ maxAttempts: 1 });
    for (const [n, allowance] of [3, 8, 20].entries()) {
      const agent = `system:serviceaccount:agents:tight-${n}`;
      const out = await burst([a.ledger, b.ledger], agent, allowance, 60, 30 + n);
      expect(out.granted.length).toBeLessThanOrEqual(allowance);
      for (const r of out.results) {
        if (r.status === 'rejected') expect((r.reason as GuardError).code).toBe('RG_ERR_LEDGER_CONFLICT');
      }
      // Every grant is in the shared state: no caller was told yes for a write that lost.
      const stored = storedState(fake, agent);
      expect(stored.reservations.map((r) => r.key).sort()).toEqual(out.granted.map(compactId).sort());
    }
    const exhausted = (await counterValue(a.metrics.conflictsExhausted)) + (await counterValue(b.metrics.conflictsExhausted));
    expect(exhausted).toBeGreaterThan(0);
  });
});
