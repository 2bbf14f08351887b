// What the loss detector costs per event when the events come in a flood
// `npm run bench:losses`. Not a test; in process, with a manual clock, about a second.
//
//   node bench/loss-cost.ts [--events N]
//
// - flapping owner: one ReplicaSet's count drops by one every 7 ms with no pod ending to
//   use the drops up (an agent scaling 3 → 2 → 3 as fast as it can), so every drop stays
//   within the detector's 65 s window;
// - pod-end flood: pods of one owner end every 0.5 ms (a runaway agent's pods deleted at
//   once), each judged once its 5 s settle time has passed, the queue flushed after each.
//
// Each is timed per event over N events (default 20,000); the cost must not grow with N.
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import type { Clock } from '../src/clock.ts';
import type { OwnerFacts, PodFacts } from '../src/cluster/kube-snapshot.ts';
import { LossDetector } from '../src/cluster/loss-detector.ts';

const { values } = parseArgs({ options: { events: { type: 'string', default: '20000' } } });
const events = Number(values.events);
if (!Number.isInteger(events) || events < 1) throw new Error('--events is a positive integer');

const owner = (steady: number): OwnerFacts => ({ steady, terminal: false, deleting: false });
const pod = (uid: string, phase: string): PodFacts => ({
  uid,
  ownerUid: 'rs1',
  phase,
  deleting: false,
  serviceAccount: 'agent-1',
  revision: undefined,
  cpuRequestMillis: undefined,
});

function detector(): { detector: LossDetector; advance: (ms: number) => void } {
  let now = 1_000_000;
  const clock: Clock = { now: () => new Date(now), monotonicMs: () => now };
  const d = new LossDetector({
    clock,
    lookups: { owner: () => owner(2), topOwner: () => undefined },
    logger: pino({ level: 'silent' }),
  });
  return {
    detector: d,
    advance: (ms) => {
      now += ms;
    },
  };
}

/** µs per event of `run` over `events` events. */
function perEvent(run: (i: number) => void): number {
  const started = performance.now();
  for (let i = 0; i < events; i++) run(i);
  return ((performance.now() - started) * 1000) / events;
}

function flappingOwner(): number {
  const { detector: d, advance } = detector();
  const us = perEvent(() => {
    d.ownerChanged('rs1', owner(3), owner(2));
    advance(7);
  });
  d.stop();
  return us;
}

function podEndFlood(): number {
  const { detector: d, advance } = detector();
  const us = perEvent((i) => {
    d.podChanged('agents', `p${i}`, pod(`p${i}`, 'Running'), pod(`p${i}`, 'Failed'), false);
    advance(0.5);
    d.flush();
  });
  d.stop();
  return us;
}

// A first pass warms the code up; the second is reported.
flappingOwner();
podEndFlood();
const rows = [
  ['flapping owner (a count drop every 7 ms, none used up)', flappingOwner()],
  ['pod-end flood (an end every 0.5 ms, flushed after each)', podEndFlood()],
] as const;
process.stdout.write(
  [
    `The loss detector per event, ${events.toLocaleString('en-US')} events (Node ${process.version}):`,
    '',
    '| load | µs per event |',
    '|---|---:|',
    ...rows.map(([load, us]) => `| ${load} | ${us.toFixed(2)} |`),
    '',
  ].join('\n'),
);
