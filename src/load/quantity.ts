const QUANTITY = /^([+-]?(?:\d+\.?\d*|\.\d+))(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?$/;

// Sub-unit suffixes divide rather than multiply: 250 / 1e3 is exactly 0.25, 250 * 1e-3 need not be.
const DIVISORS: Readonly<Record<string, number>> = { n: 1e9, u: 1e6, m: 1e3 };

const MULTIPLIERS: Readonly<Record<string, number>> = {
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

/**
 * Reads a Kubernetes resource quantity (`250m`, `1`, `0.5`, `1500000n`, `2u`, `1Ki`,
 * `1e3`) into its value in base units: cores for CPU, bytes for memory. metrics-server
 * reports CPU in nanocores (`1500000n`), pod specs usually in millicores (`250m`).
 * Undefined for anything the apiserver would not accept, so a garbled answer is refused
 * rather than read as 0.
 */
export function parseQuantity(text: string): number | undefined {
  const m = QUANTITY.exec(text.trim());
  if (m === null) return undefined;
  const number = Number(m[1]);
  const suffix = m[2] ?? '';
  let value: number;
  const divisor = DIVISORS[suffix];
  const multiplier = MULTIPLIERS[suffix];
  if (suffix === '') value = number;
  else if (suffix.length > 1 && (suffix[0] === 'e' || suffix[0] === 'E')) {
    const exponent = Number(suffix.slice(1));
    value = exponent < 0 ? number / 10 ** -exponent : number * 10 ** exponent;
  } else if (divisor !== undefined) value = number / divisor;
  else if (multiplier !== undefined) value = number * multiplier;
  else return undefined;
  return Number.isFinite(value) ? value : undefined;
}
