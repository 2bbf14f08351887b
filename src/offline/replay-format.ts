import type { BasisRisk } from '../core/risk.ts';
import type { ComparedVerdict } from './replay-record.ts';
import type { AgentReplay } from './replay-summary.ts';

function verdictText(v: ComparedVerdict): string {
  if (v.decision === 'allowed') return v.policy ? `allowed (policy ${v.policy})` : 'allowed';
  return `denied by ${v.policy ?? 'the guard'}${v.limit ? ` (${v.limit})` : ''}`;
}

function riskRow(label: string, r: BasisRisk): string {
  return `    ${label.padEnd(24)} ${String(r.episodes).padStart(6)}  ${r.overuseRate.toFixed(3)}  ${String(r.aoc).padStart(6)}  ${r.aocNorm.toFixed(3)}     ${r.successRate.toFixed(3)}  ${r.score.toFixed(3)}`;
}

/** The share of the surplus asked for that a basis kept out, as a percentage. */
export function surplusStopped(requestedAoc: number, admittedAoc: number): number | undefined {
  return requestedAoc > 0 ? (100 * (requestedAoc - admittedAoc)) / requestedAoc : undefined;
}

function agentLines(a: AgentReplay): string[] {
  const lines = [`AGENT ${a.agent}`];
  const skipped = a.notReplayable > 0 ? `, ${a.notReplayable} not replayable (decided by the deadline fallback)` : '';
  const reworded = a.reworded > 0 ? `, ${a.reworded} keep their verdict with another message` : '';
  lines.push(
    `  ${a.reviews} reviews: ${a.changed} verdicts change (${a.allowedToDenied} allowed → denied, ${a.deniedToAllowed} denied → allowed)${reworded}${skipped}`,
  );
  for (const c of a.shown) {
    lines.push(`  - ${c.time} ${c.uid} ${c.workload} ${c.from} → ${c.to}: recorded ${verdictText(c.recorded)}, now ${verdictText(c.replayed)}`);
    const message = c.replayed.message.split('\n')[0];
    if (message) lines.push(`      ${message}`);
  }
  if (a.changed > a.shown.length) lines.push(`  ... and ${a.changed - a.shown.length} more changed verdicts`);
  lines.push('  risk on the admitted basis:  E       OR      AOC     AOC_norm  SR     ΦR');
  lines.push(riskRow('recorded', a.recorded), riskRow('under these policies', a.replayed));
  const was = surplusStopped(a.requestedAoc, a.recorded.aoc);
  const now = surplusStopped(a.requestedAoc, a.replayed.aoc);
  if (was !== undefined && now !== undefined) {
    lines.push(`  surplus stopped: ${now.toFixed(1)}% under these policies, ${was.toFixed(1)}% recorded (of ${a.requestedAoc} instances asked above the need)`);
  } else {
    lines.push('  surplus stopped: the agent asked for nothing above the need');
  }
  lines.push(`  false denials: ${a.falseDenials} (growth denied although the count stayed within the need)`);
  for (const f of a.falseDenialsShown) lines.push(`  - ${f.time} ${f.uid} ${f.workload}: asked ${f.requested}, need ${f.need}`);
  if (a.falseDenials > a.falseDenialsShown.length) lines.push(`  ... and ${a.falseDenials - a.falseDenialsShown.length} more`);
  return lines;
}

/** The replay as text: one block per agent, then the totals. */
export function replayTable(agents: readonly AgentReplay[], records: number, badLines: number): string[] {
  const out: string[] = [];
  for (const a of agents) out.push(...agentLines(a), '');
  const changed = agents.reduce((n, a) => n + a.changed, 0);
  const falseDenials = agents.reduce((n, a) => n + a.falseDenials, 0);
  const skipped = badLines > 0 ? `, ${badLines} bad lines skipped` : '';
  out.push(`${records} recorded reviews of ${agents.length} agents: ${changed} verdicts change, ${falseDenials} false denials${skipped}.`);
  return out;
}
