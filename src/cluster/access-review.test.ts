import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { capturingLogger, testClock } from '../../test/helpers/telemetry.ts';
import { accessSubjectOf, type ResourceAccess, SubjectAccessReviews } from './access-review.ts';

// The HTTP side of the SubjectAccessReviews, against a tiny server that answers just
// enough; the reviews against the fake API server's rules are tested under test/view/.

interface Asked {
  readonly path: string;
  readonly authorization: string | undefined;
  readonly body: { spec: Record<string, unknown> };
}

let server: Server | undefined;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = undefined;
});

async function serve(answer: (asked: Asked, res: ServerResponse) => void): Promise<{ url: string; asked: Asked[] }> {
  const asked: Asked[] = [];
  server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const one = { path: req.url ?? '', authorization: req.headers.authorization, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Asked['body'] };
      asked.push(one);
      answer(one, res);
    });
  });
  await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, asked };
}

const json = (res: ServerResponse, status: number, body: unknown) =>
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
const review = (allowed: boolean, denied?: boolean) => ({ kind: 'SubjectAccessReview', status: { allowed, ...(denied === undefined ? {} : { denied }) } });

const AGENT = { user: 'system:serviceaccount:agents:agent-1', groups: ['system:serviceaccounts:agents', 'system:authenticated'] };
const PATCH_HPA: ResourceAccess = { verb: 'patch', group: 'autoscaling', resource: 'horizontalpodautoscalers', namespace: 'shop', name: 'web' };
const NEVER = new AbortController().signal;

function reviews(url: string, overrides: Partial<ConstructorParameters<typeof SubjectAccessReviews>[0]> = {}) {
  const clock = testClock();
  const { logger, lines } = capturingLogger();
  const sar = new SubjectAccessReviews({ connection: { baseUrl: `${url}/`, token: 'guard-token' }, clock, logger, ...overrides });
  return { sar, clock, lines };
}

describe('SubjectAccessReviews', () => {
  it('posts a review with the user, groups and resource attributes, and reads status.allowed', async () => {
    const { url, asked } = await serve((_a, res) => json(res, 201, review(true)));
    const { sar } = reviews(url);
    expect(await sar.allowed(AGENT, { ...PATCH_HPA, subresource: 'status' }, NEVER)).toBe(true);
    expect(asked).toEqual([
      {
        path: '/apis/authorization.k8s.io/v1/subjectaccessreviews',
        authorization: 'Bearer guard-token',
        body: expect.objectContaining({
          spec: {
            user: AGENT.user,
            groups: AGENT.groups,
            resourceAttributes: { verb: 'patch', group: 'autoscaling', resource: 'horizontalpodautoscalers', subresource: 'status', namespace: 'shop', name: 'web' },
          },
        }),
      },
    ]);
  });

  it('is false when no authorizer allows, and when one explicitly denies', async () => {
    let answer = review(false);
    const { url } = await serve((_a, res) => json(res, 201, answer));
    const { sar, clock } = reviews(url);
    expect(await sar.allowed(AGENT, PATCH_HPA, NEVER)).toBe(false);
    // An explicit deny, as the apiserver sends it: allowed false, denied true.
    answer = review(false, true);
    clock.advance(60_000);
    expect(await sar.allowed(AGENT, PATCH_HPA, NEVER)).toBe(false);
    // Even beside an allowed (a malformed answer), a deny is never read as a yes.
    answer = review(true, true);
    clock.advance(60_000);
    expect(await sar.allowed(AGENT, PATCH_HPA, NEVER)).toBe(false);
  });

  it('asks once per question for the TTL, whatever the order of the groups, and again after it', async () => {
    const { url, asked } = await serve((_a, res) => json(res, 201, review(false)));
    const { sar, clock } = reviews(url, { ttlMs: 60_000 });
    await Promise.all(Array.from({ length: 5 }, () => sar.allowed(AGENT, PATCH_HPA, NEVER)));
    await sar.allowed({ ...AGENT, groups: [...AGENT.groups].reverse() }, PATCH_HPA, NEVER);
    expect(asked).toHaveLength(1);
    // Another verb is another question.
    await sar.allowed(AGENT, { ...PATCH_HPA, verb: 'update' }, NEVER);
    expect(asked).toHaveLength(2);
    clock.advance(59_999);
    await sar.allowed(AGENT, PATCH_HPA, NEVER);
    expect(asked).toHaveLength(2);
    clock.advance(1);
    await sar.allowed(AGENT, PATCH_HPA, NEVER);
    expect(asked).toHaveLength(3);
  });

  it('does not know on an error status, logs it once per interval with a hint, and asks again after a second', async () => {
    const { url, asked } = await serve((_a, res) =>
      json(res, 403, { kind: 'Status', code: 403, message: 'subjectaccessreviews is forbidden' }),
    );
    const { sar, clock, lines } = reviews(url);
    expect(await sar.allowed(AGENT, PATCH_HPA, NEVER)).toBeUndefined();
    expect(await sar.allowed(AGENT, PATCH_HPA, NEVER)).toBeUndefined();
    expect(asked).toHaveLength(1);
    clock.advance(1_000);
    expect(await sar.allowed(AGENT, PATCH_HPA, NEVER)).toBeUndefined();
    expect(asked).toHaveLength(2);
    const warnings = lines.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('SubjectAccessReview failed'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]?.detail).toMatch(/HTTP 403 \(the guard's RBAC needs create on subjectaccessreviews/);
  });

  it('does not know when the answer is not a review, or the server does not answer in time', async () => {
    let mode: 'garbage' | 'silent' = 'garbage';
    const { url } = await serve((_a, res) => {
      if (mode === 'garbage') json(res, 201, { kind: 'Status' });
      // silent: never answers
    });
    const { sar, clock } = reviews(url, { timeoutMs: 100 });
    expect(await sar.allowed(AGENT, PATCH_HPA, NEVER)).toBeUndefined();
    mode = 'silent';
    clock.advance(1_000);
    const started = performance.now();
    expect(await sar.allowed(AGENT, PATCH_HPA, NEVER)).toBeUndefined();
    expect(performance.now() - started).toBeLessThan(1_000);
  });

  it("does not know once the caller's deadline passes", async () => {
    const { url } = await serve(() => undefined);
    const { sar } = reviews(url, { timeoutMs: 5_000 });
    expect(await sar.allowed(AGENT, PATCH_HPA, AbortSignal.timeout(50))).toBeUndefined();
  });
});

describe('accessSubjectOf', () => {
  it("takes the request's groups, a service account's implied ones without them, and nothing for a user without groups", () => {
    expect(accessSubjectOf({ username: 'bot', groups: ['ai-team'] })).toEqual({ user: 'bot', groups: ['ai-team'] });
    expect(accessSubjectOf({ username: AGENT.user, serviceAccount: { namespace: 'agents', name: 'agent-1' } })).toEqual({
      user: AGENT.user,
      groups: ['system:serviceaccounts', 'system:serviceaccounts:agents', 'system:authenticated'],
    });
    expect(accessSubjectOf({ username: 'bot' })).toBeUndefined();
  });
});
