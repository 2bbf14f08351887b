import type { Policy } from '../core/types.ts';
import type { PolicyProblem, PolicySetLoad } from './policy-loader.ts';

/** The set of policies currently deciding. */
export interface PolicySet {
  readonly policies: readonly Policy[];
  readonly digest: string;
  readonly loadedAt: Date;
}

/** What {@link PolicyStore.apply} did with a load. */
export interface ApplyResult {
  readonly outcome: 'applied' | 'unchanged' | 'rejected';
  /** Why a load was rejected, in plain words. */
  readonly reason?: string;
  /** Every problem of the load, warnings included, whatever the outcome. */
  readonly problems: PolicyProblem[];
  /** Errors thrown by change listeners; the set was applied all the same. */
  readonly listenerErrors?: readonly unknown[];
}

/** Options of a {@link PolicyStore}. */
export interface PolicyStoreOptions {
  /**
   * Accept a load with no policies. Off by default: an emptied ConfigMap or a bad mount
   * would otherwise silently turn every agent loose.
   */
  readonly allowEmpty?: boolean;
}

/** Called with the new set after it has been applied. */
export type PolicySetListener = (set: PolicySet) => void;

/**
 * Holds the last good policy set. A load with errors, or one that would drop to zero
 * policies, is refused and the last good set keeps deciding, so a broken edit of a
 * policy file never opens the gate.
 */
export class PolicyStore {
  readonly #allowEmpty: boolean;
  readonly #listeners = new Set<PolicySetListener>();
  #current: PolicySet | undefined;

  constructor(options: PolicyStoreOptions = {}) {
    this.#allowEmpty = options.allowEmpty ?? false;
  }

  /** The set deciding now; undefined until a load has been applied. */
  current(): PolicySet | undefined {
    return this.#current;
  }

  /** Applies a load unless it has errors, is empty (and that is not allowed) or changes nothing. */
  apply(load: PolicySetLoad, now: Date): ApplyResult {
    const problems = load.problems;
    const errors = problems.filter((p) => p.severity === 'error').length;
    if (errors > 0) {
      return { outcome: 'rejected', reason: `${plural(errors, 'error')} in the policy files; ${this.#keeping()}`, problems };
    }
    if (this.#current !== undefined && this.#current.digest === load.digest) {
      return { outcome: 'unchanged', problems };
    }
    if (load.policies.length === 0 && !this.#allowEmpty) {
      return {
        outcome: 'rejected',
        reason: `no policies found (${plural(load.files.length, 'file')} read) and an empty set is not allowed; ${this.#keeping()}`,
        problems,
      };
    }
    const set: PolicySet = { policies: Object.freeze([...load.policies]), digest: load.digest, loadedAt: now };
    this.#current = set;
    const listenerErrors: unknown[] = [];
    for (const listener of [...this.#listeners]) {
      // One failing listener must not keep the others from learning about the new set.
      try {
        listener(set);
      } catch (error) {
        listenerErrors.push(error);
      }
    }
    return listenerErrors.length > 0 ? { outcome: 'applied', problems, listenerErrors } : { outcome: 'applied', problems };
  }

  /** Registers a listener for applied sets; returns a function that removes it. */
  onChange(listener: PolicySetListener): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  #keeping(): string {
    const current = this.#current;
    return current === undefined
      ? 'no policy set has been loaded yet'
      : `keeping the last good set (${plural(current.policies.length, 'policy', 'policies')}, loaded ${current.loadedAt.toISOString()})`;
  }
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}
