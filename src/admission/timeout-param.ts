const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * Reads the `timeout` query parameter the apiserver appends to each webhook call, a Go
 * duration such as `10s` or `1m30s`. Returns undefined when absent or unreadable.
 */
export function parseTimeoutParam(value: string | undefined): number | undefined {
  if (!value) return undefined;
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/gy;
  let total = 0;
  let consumed = 0;
  for (let m = re.exec(value); m !== null; m = re.exec(value)) {
    const [whole, amount, unit] = m;
    total += Number(amount) * (UNIT_MS[unit ?? ''] ?? Number.NaN);
    consumed += whole.length;
  }
  if (consumed !== value.length || consumed === 0 || !Number.isFinite(total)) return undefined;
  return total;
}
