import {
  addEpisodeSums,
  type BasisRisk,
  episodeSums,
  type EpisodeSums,
  NO_EPISODES,
  type RiskEpisode,
  type RiskOptions,
  riskOf,
} from '../core/risk.ts';
import type { ReviewRecord } from '../record/review-record.ts';
import type { ComparedVerdict } from './replay-record.ts';

/** A verdict the replay changed, as shown in full. */
export interface ChangedVerdict {
  readonly time: string;
  readonly uid: string;
  readonly workload: string;
  readonly from: number;
  readonly to: number;
  readonly recorded: ComparedVerdict;
  readonly replayed: ComparedVerdict;
}

/** A growth the replayed policies deny although the count stayed within the need. */
export interface FalseDenial {
  readonly time: string;
  readonly uid: string;
  readonly workload: string;
  readonly requested: number;
  readonly need: number;
}

/** One agent's replay. */
export interface AgentReplay {
  readonly agent: string;
  readonly reviews: number;
  readonly notReplayable: number;
  readonly changed: number;
  /** Verdicts with the same decision, policy and limit but another message. */
  readonly reworded: number;
  readonly allowedToDenied: number;
  readonly deniedToAllowed: number;
  /** The first changed verdicts, in recording order. */
  readonly shown: readonly ChangedVerdict[];
  readonly falseDenials: number;
  readonly falseDenialsShown: readonly FalseDenial[];
  /** Risk on the admitted basis as recorded and under the replayed policies. */
  readonly recorded: BasisRisk;
  readonly replayed: BasisRisk;
  /** AOC on the requested basis: the surplus the agent asked for. */
  readonly requestedAoc: number;
}

interface AgentState {
  reviews: number;
  notReplayable: number;
  changed: number;
  reworded: number;
  allowedToDenied: number;
  deniedToAllowed: number;
  shown: ChangedVerdict[];
  falseDenials: number;
  falseDenialsShown: FalseDenial[];
  recorded: EpisodeSums;
  replayed: EpisodeSums;
}

const workloadOf = (r: ReviewRecord) => {
  const req = r.request;
  return `${req.resource.resource}${req.subResource ? `/${req.subResource}` : ''} ${req.namespace ? `${req.namespace}/` : ''}${req.name}`;
};

/** Adds replayed reviews up per agent, keeping the first `shown` changed verdicts in full. */
export class ReplaySummary {
  readonly #agents = new Map<string, AgentState>();
  readonly #options: RiskOptions;
  readonly #shown: number;

  constructor(options: RiskOptions, shown: number) {
    this.#options = options;
    this.#shown = shown;
  }

  #state(agent: string): AgentState {
    let s = this.#agents.get(agent);
    if (!s) {
      s = {
        reviews: 0,
        notReplayable: 0,
        changed: 0,
        reworded: 0,
        allowedToDenied: 0,
        deniedToAllowed: 0,
        shown: [],
        falseDenials: 0,
        falseDenialsShown: [],
        recorded: NO_EPISODES,
        replayed: NO_EPISODES,
      };
      this.#agents.set(agent, s);
    }
    return s;
  }

  notReplayable(record: ReviewRecord): void {
    const s = this.#state(record.agent);
    s.reviews++;
    s.notReplayable++;
  }

  add(
    record: ReviewRecord,
    recorded: ComparedVerdict,
    replayed: ComparedVerdict,
    comparison: 'same' | 'reworded' | 'changed',
    episodes: { readonly recorded: RiskEpisode | undefined; readonly replayed: RiskEpisode | undefined },
  ): void {
    const s = this.#state(record.agent);
    s.reviews++;
    if (comparison === 'reworded') s.reworded++;
    if (comparison === 'changed') {
      s.changed++;
      if (recorded.decision === 'allowed' && replayed.decision === 'denied') s.allowedToDenied++;
      if (recorded.decision === 'denied' && replayed.decision === 'allowed') s.deniedToAllowed++;
      if (s.shown.length < this.#shown) {
        s.shown.push({ time: record.time, uid: record.request.uid, workload: workloadOf(record), from: record.verdict.from, to: record.verdict.to, recorded, replayed });
      }
    }
    if (episodes.recorded) s.recorded = addEpisodeSums(s.recorded, episodeSums(episodes.recorded, this.#options));
    if (episodes.replayed) s.replayed = addEpisodeSums(s.replayed, episodeSums(episodes.replayed, this.#options));
    // A false denial: growth denied although what was asked stayed within the measured need.
    const need = record.verdict.measured && !record.verdict.fallback ? record.verdict.need : null;
    if (episodes.recorded && replayed.decision === 'denied' && need !== null && record.verdict.requested <= need) {
      s.falseDenials++;
      if (s.falseDenialsShown.length < this.#shown) {
        s.falseDenialsShown.push({ time: record.time, uid: record.request.uid, workload: workloadOf(record), requested: record.verdict.requested, need });
      }
    }
  }

  agents(): AgentReplay[] {
    return [...this.#agents.keys()].sort().map((agent) => {
      const s = this.#agents.get(agent) as AgentState;
      const recorded = riskOf(s.recorded, this.#options);
      return {
        agent,
        reviews: s.reviews,
        notReplayable: s.notReplayable,
        changed: s.changed,
        reworded: s.reworded,
        allowedToDenied: s.allowedToDenied,
        deniedToAllowed: s.deniedToAllowed,
        shown: s.shown,
        falseDenials: s.falseDenials,
        falseDenialsShown: s.falseDenialsShown,
        recorded: recorded.admitted,
        replayed: riskOf(s.replayed, this.#options).admitted,
        requestedAoc: recorded.requested.aoc,
      };
    });
  }
}
