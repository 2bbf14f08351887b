import { excerpt } from './http-failure.ts';
import type { LoadFailure } from './load-failures.ts';

/** What one instant query said about a workload's load. */
export type PrometheusAnswer =
  | { readonly kind: 'load'; readonly value: number }
  | { readonly kind: 'no-series' }
  | { readonly kind: 'failed'; readonly failure: LoadFailure };

const FLOAT = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;

/**
 * Reads a sample value as Prometheus writes it: a decimal string, or NaN, +Inf, -Inf.
 * Only a finite, non-negative number is a load; the rest is said in words.
 */
export function sampleValue(text: unknown): { value: number } | { problem: string } {
  if (typeof text !== 'string') return { problem: 'a sample without a value' };
  if (text === 'NaN') return { problem: 'NaN (a division by zero in the query, often a rate over no requests)' };
  if (text === '+Inf' || text === 'Inf' || text === '-Inf') return { problem: `${text}` };
  if (!FLOAT.test(text)) return { problem: `an unreadable value "${excerpt(text, 40)}"` };
  const value = Number(text);
  if (!Number.isFinite(value)) return { problem: `a value out of range (${excerpt(text, 40)})` };
  if (value < 0) return { problem: `a negative load (${value})` };
  return { value };
}

/**
 * Interprets the answer to `GET|POST /api/v1/query`: the load is a vector with exactly one
 * sample, or a scalar; an empty vector means no series yet. Everything else (an HTTP or
 * PromQL error, more than one series, a matrix, a native histogram, a body that is not the
 * API's JSON) is a failure with the reason in words, so the denial or log says what to fix.
 */
export function interpretQueryAnswer(httpStatus: number, body: string, query: string): PrometheusAnswer {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    if (httpStatus < 200 || httpStatus >= 300) return httpFailure(httpStatus, excerpt(body));
    return bad(`prometheus answered something other than JSON: ${excerpt(body, 80)}`);
  }
  if (!isObject(parsed)) return bad('prometheus answered JSON that is not an API response');

  if (parsed.status === 'error') {
    const errorType = typeof parsed.errorType === 'string' ? parsed.errorType : 'error';
    const message = typeof parsed.error === 'string' ? parsed.error : 'no message';
    // 400 bad_data and 422 execution errors are the query's fault: a policy to fix. The
    // rest (503 timeout or canceled, 500 internal) are the server's.
    if (httpStatus === 400 || httpStatus === 422 || errorType === 'bad_data' || errorType === 'execution') {
      return {
        kind: 'failed',
        failure: { reason: 'query', detail: `prometheus refused the query ${excerpt(query, 160)}: ${errorType}: ${excerpt(message)}` },
      };
    }
    return httpFailure(httpStatus, `${errorType}: ${excerpt(message)}`);
  }
  if (httpStatus < 200 || httpStatus >= 300) return httpFailure(httpStatus, excerpt(body));
  if (parsed.status !== 'success' || !isObject(parsed.data)) return bad('prometheus answered without status "success" and data');

  const { resultType, result } = parsed.data;
  if (resultType === 'scalar') {
    if (!Array.isArray(result) || result.length !== 2) return bad('prometheus answered a malformed scalar');
    return loadOf(result[1]);
  }
  if (resultType !== 'vector') {
    return bad(`the query returned a ${String(resultType)}, not an instant vector or scalar: ${excerpt(query, 160)}`);
  }
  if (!Array.isArray(result)) return bad('prometheus answered a vector without samples');
  if (result.length === 0) return { kind: 'no-series' };
  if (result.length > 1) {
    return bad(
      `the query returned ${result.length} series; it must return the workload's total load as one (wrap it in sum(...)): ${excerpt(query, 160)}`,
    );
  }
  const sample: unknown = result[0];
  if (!isObject(sample)) return bad('prometheus answered a malformed sample');
  if (sample.histogram !== undefined) return bad('the query returned a native histogram, not a number');
  if (!Array.isArray(sample.value) || sample.value.length !== 2) return bad('prometheus answered a sample without a value');
  return loadOf(sample.value[1]);
}

function loadOf(text: unknown): PrometheusAnswer {
  const read = sampleValue(text);
  if ('problem' in read) return bad(`the query returned ${read.problem}, not a load`);
  return { kind: 'load', value: read.value };
}

function bad(detail: string): PrometheusAnswer {
  return { kind: 'failed', failure: { reason: 'bad_response', detail } };
}

function httpFailure(status: number, text: string): PrometheusAnswer {
  return { kind: 'failed', failure: { reason: 'http', detail: `prometheus answered HTTP ${status}${text ? `: ${text}` : ''}` } };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
