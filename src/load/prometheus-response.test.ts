import { describe, expect, it } from 'vitest';
import { interpretQueryAnswer, sampleValue } from './prometheus-response.ts';

const Q = 'sum(rate(http_requests_total{app="web"}[2m]))';
const vector = (...values: string[]) =>
  JSON.stringify({
    status: 'success',
    data: { resultType: 'vector', result: values.map((v, i) => ({ metric: { i: String(i) }, value: [1_700_000_000.1, v] })) },
  });

describe('interpretQueryAnswer', () => {
  it('reads the one sample of a vector as the load', () => {
    expect(interpretQueryAnswer(200, vector('260.5'), Q)).toEqual({ kind: 'load', value: 260.5 });
  });

  it('reads a scalar as the load', () => {
    const body = JSON.stringify({ status: 'success', data: { resultType: 'scalar', result: [1_700_000_000, '12'] } });
    expect(interpretQueryAnswer(200, body, Q)).toEqual({ kind: 'load', value: 12 });
  });

  it('takes an empty vector as no series yet', () => {
    expect(interpretQueryAnswer(200, vector(), Q)).toEqual({ kind: 'no-series' });
  });

  it.each([
    ['NaN', /NaN/],
    ['+Inf', /\+Inf/],
    ['-Inf', /-Inf/],
    ['-3', /negative/],
    ['twelve', /unreadable/],
  ])('refuses a sample of %s', (value, message) => {
    const answer = interpretQueryAnswer(200, vector(value), Q);
    expect(answer).toMatchObject({ kind: 'failed', failure: { reason: 'bad_response' } });
    if (answer.kind === 'failed') expect(answer.failure.detail).toMatch(message);
  });

  it('refuses more than one series and says to sum them', () => {
    const answer = interpretQueryAnswer(200, vector('1', '2'), Q);
    expect(answer).toMatchObject({ kind: 'failed', failure: { reason: 'bad_response' } });
    if (answer.kind === 'failed') expect(answer.failure.detail).toContain('2 series');
    if (answer.kind === 'failed') expect(answer.failure.detail).toContain('sum(');
  });

  it('refuses a range vector and a string', () => {
    for (const resultType of ['matrix', 'string']) {
      const body = JSON.stringify({ status: 'success', data: { resultType, result: [] } });
      expect(interpretQueryAnswer(200, body, Q)).toMatchObject({ kind: 'failed', failure: { reason: 'bad_response' } });
    }
  });

  it('refuses a native histogram sample', () => {
    const body = JSON.stringify({
      status: 'success',
      data: { resultType: 'vector', result: [{ metric: {}, histogram: [1, { count: '3', sum: '1' }] }] },
    });
    expect(interpretQueryAnswer(200, body, Q)).toMatchObject({ kind: 'failed', failure: { reason: 'bad_response' } });
  });

  it('refuses a body that is not JSON, or not the API envelope', () => {
    expect(interpretQueryAnswer(200, '<html>proxy login</html>', Q)).toMatchObject({
      kind: 'failed',
      failure: { reason: 'bad_response', detail: expect.stringContaining('other than JSON') },
    });
    expect(interpretQueryAnswer(200, '[1,2]', Q)).toMatchObject({ kind: 'failed', failure: { reason: 'bad_response' } });
    expect(interpretQueryAnswer(200, '{"status":"success"}', Q)).toMatchObject({ kind: 'failed', failure: { reason: 'bad_response' } });
  });

  it('blames the query for a PromQL error (400 bad_data, 422 execution), with Prometheus own words', () => {
    const body = JSON.stringify({ status: 'error', errorType: 'bad_data', error: 'parse error: unexpected "}"' });
    const answer = interpretQueryAnswer(400, body, 'sum(x{)');
    expect(answer).toMatchObject({ kind: 'failed', failure: { reason: 'query' } });
    if (answer.kind === 'failed') expect(answer.failure.detail).toContain('parse error');
    const exec = JSON.stringify({ status: 'error', errorType: 'execution', error: 'many-to-many matching not allowed' });
    expect(interpretQueryAnswer(422, exec, Q)).toMatchObject({ kind: 'failed', failure: { reason: 'query' } });
  });

  it('blames the server for other errors', () => {
    const timeout = JSON.stringify({ status: 'error', errorType: 'timeout', error: 'query timed out in expression evaluation' });
    expect(interpretQueryAnswer(503, timeout, Q)).toMatchObject({
      kind: 'failed',
      failure: { reason: 'http', detail: expect.stringContaining('HTTP 503') },
    });
    expect(interpretQueryAnswer(502, 'Bad Gateway', Q)).toMatchObject({
      kind: 'failed',
      failure: { reason: 'http', detail: 'prometheus answered HTTP 502: Bad Gateway' },
    });
    expect(interpretQueryAnswer(500, vector('1'), Q)).toMatchObject({ kind: 'failed', failure: { reason: 'http' } });
  });
});

describe('sampleValue', () => {
  it('reads the forms Prometheus writes', () => {
    expect(sampleValue('0')).toEqual({ value: 0 });
    expect(sampleValue('1e+21')).toEqual({ value: 1e21 });
    expect(sampleValue('0.000123')).toEqual({ value: 0.000123 });
  });

  it('does not read an empty string as 0', () => {
    expect(sampleValue('')).toHaveProperty('problem');
    expect(sampleValue(12)).toHaveProperty('problem');
  });
});
