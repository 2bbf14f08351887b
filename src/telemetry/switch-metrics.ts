import { Counter, Gauge, type Registry } from 'prom-client';
import { activeCounts, type Switches } from '../core/switches.ts';

/** The metrics of the safety switches. */
export interface SwitchMetrics {
  /** Requests whose outcome a switch set: a freeze denied growth, break-glass or an exemption allowed it in audit mode. */
  readonly decisions: Counter<'switch' | 'verdict'>;
  /** Reads of the switch source that failed (the last read switches keep applying). */
  readonly readErrors: Counter;
  /** When the switches were last read, as a Unix timestamp. */
  readonly lastRead: Gauge;
}

/**
 * Registers the switch metrics. `replica_guard_switches_active{switch}` is computed at
 * scrape time from the switches in force, so an exemption that expires leaves it at once.
 */
export function createSwitchMetrics(registry: Registry, current: () => Switches, nowMs: () => number): SwitchMetrics {
  const registers = [registry];
  new Gauge({
    name: 'replica_guard_switches_active',
    help: 'Safety switches in force, by kind (freeze-all, freeze-namespace, freeze-agent, break-glass, exempt-agent, exempt-workload).',
    labelNames: ['switch'],
    registers,
    collect() {
      for (const [kind, n] of Object.entries(activeCounts(current(), nowMs()))) this.set({ switch: kind }, n);
    },
  });
  return {
    decisions: new Counter({
      name: 'replica_guard_switch_decisions_total',
      help: 'Agent requests whose outcome a safety switch set, by switch (freeze, break-glass, exemption) and verdict.',
      labelNames: ['switch', 'verdict'],
      registers,
    }),
    readErrors: new Counter({
      name: 'replica_guard_switch_read_errors_total',
      help: 'Reads of the switch ConfigMap (or file) that failed; the switches last read keep applying.',
      registers,
    }),
    lastRead: new Gauge({
      name: 'replica_guard_switches_last_read_timestamp_seconds',
      help: 'When the safety switches were last read successfully, as a Unix timestamp.',
      registers,
    }),
  };
}
