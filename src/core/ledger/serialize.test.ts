import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { key, MIN, res, sampleState, small, T0 } from '../../../test/helpers/ledger-state-fixtures.ts';
import { recordEpisodeKey } from './episode-keys.ts';
import { expire } from './expire.ts';
import { holdRequested } from './held-requests.ts';
import { recordLoss } from './losses.ts';
import { parseState } from './parse.ts';
import { addProvenance } from './provenance.ts';
import { rateUsed } from './rate.ts';
import { confirmReservation, reserve } from './reservations.ts';
import { serializeState } from './serialize.ts';
import { emptyState } from './state.ts';

describe('serialisation', () => {
  it('round-trips a state through JSON with its version', () => {
    const s = sampleState();
    const text = serializeState(s);
    expect(JSON.parse(text)).toMatchObject({ version: 1 });
    expect(parseState(text)).toEqual({ state: s, problems: [], sourceVersion: 1 });
  });

  it('round-trips any state the functions build, and keeps every collection within its bound', () => {
    const l = small({ held: 3, episodeKeys: 3, provenance: 3, reservations: 3, losses: 3, buckets: 5 });
    const op = fc.oneof(
      fc.record({ type: fc.constant('hold' as const), n: fc.nat(20), count: fc.nat(10) }),
      fc.record({ type: fc.constant('episode' as const), n: fc.nat(20) }),
      fc.record({ type: fc.constant('provenance' as const), n: fc.nat(20) }),
      fc.record({ type: fc.constant('reserve' as const), n: fc.nat(20), count: fc.nat(10) }),
      fc.record({ type: fc.constant('confirm' as const), n: fc.nat(20) }),
      fc.record({ type: fc.constant('loss' as const), n: fc.nat(20) }),
      fc.record({ type: fc.constant('expire' as const) }),
    );
    fc.assert(
      fc.property(fc.array(fc.tuple(op, fc.nat(10 * MIN)), { maxLength: 60 }), (ops) => {
        let s = emptyState();
        let t = T0;
        for (const [o, dt] of ops) {
          t += dt;
          const now = new Date(t);
          const before = rateUsed(s, 5 * MIN, now);
          switch (o.type) {
            case 'hold':
              s = holdRequested(s, key(o.n), o.count, now, l);
              break;
            case 'episode':
              s = recordEpisodeKey(s, key(o.n), now, l).state;
              break;
            case 'provenance':
              s = addProvenance(s, `uid-${o.n}`, now, l);
              break;
            case 'reserve':
              s = reserve(s, res(key(o.n), o.count), now, l);
              break;
            case 'confirm':
              s = confirmReservation(s, key(o.n), now, l).state;
              // Confirming never hands allowance back.
              expect(rateUsed(s, 5 * MIN, now)).toBeGreaterThanOrEqual(before);
              break;
            case 'loss':
              s = recordLoss(s, `pod-${o.n}`, now, now, l).state;
              break;
            case 'expire':
              s = expire(s, now, l);
              break;
          }
        }
        expect(s.held.length).toBeLessThanOrEqual(3);
        expect(s.episodeKeys.length).toBeLessThanOrEqual(3);
        expect(s.provenance.length).toBeLessThanOrEqual(3);
        expect(s.reservations.length).toBeLessThanOrEqual(3);
        expect(s.losses.length).toBeLessThanOrEqual(3);
        expect(s.rate.length).toBeLessThanOrEqual(5);
        expect(parseState(serializeState(s), l)).toEqual({ state: s, problems: [], sourceVersion: 1 });
      }),
      { numRuns: 200 },
    );
  });
});
