import { staticNeed } from '../core/static-need.ts';
import type { NeedFact } from '../core/types.ts';
import type { LoadSource, NeedQuery } from './load-source.ts';

/** The need each policy states (`need.static` within `min` and `max`); see {@link staticNeed}. */
export class StaticLoadSource implements LoadSource {
  async need(query: NeedQuery): Promise<NeedFact> {
    return staticNeed(query.policy);
  }
}
