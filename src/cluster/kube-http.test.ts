import { describe, expect, it } from 'vitest';
import { kubeFetch } from './kube-http.ts';

describe('kubeFetch', () => {
  it("joins the base URL (prefix kept, trailing slash dropped) and the path, and puts the connection's credentials under the request's headers", async () => {
    const calls: { url: string; init: RequestInit }[] = [];
    const dispatcher = { marker: 'dispatcher' } as unknown as RequestInit['dispatcher'];
    const res = await kubeFetch(
      {
        baseUrl: 'https://10.0.0.1:6443/proxy/',
        token: 'static',
        headers: async () => ({ authorization: 'Bearer rotated', 'x-extra': '1' }),
        dispatcher,
        fetch: async (url, init) => {
          calls.push({ url, init });
          return new Response('{}', { status: 200 });
        },
      },
      '/api/v1/pods?limit=1',
      { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' },
    );
    expect(res.status).toBe(200);
    expect(calls).toHaveLength(1);
    expect(calls[0]?.url).toBe('https://10.0.0.1:6443/proxy/api/v1/pods?limit=1');
    expect(calls[0]?.init).toMatchObject({
      method: 'POST',
      body: '{}',
      dispatcher,
      // Headers asked for at each request win over the static token: they are the fresher.
      headers: { accept: 'application/json', authorization: 'Bearer rotated', 'x-extra': '1', 'content-type': 'application/json' },
    });
  });
});
