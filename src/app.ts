import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyInstance, LogController } from 'fastify';
import type { Logger } from 'pino';
import type { ReviewHandler } from './admission/review-handler.ts';
import type { Webhook } from './admission/verdict.ts';
import { ERROR_CODES, type ErrorCode } from './errors.ts';
import type { GuardMetrics } from './telemetry/metrics.ts';

/** An UPDATE review carries the object twice, and objects reach 3 MiB. */
export const BODY_LIMIT_BYTES = 8 * 1024 * 1024;
/** Longer than the apiserver's 90 s idle connections, so it never writes to a socket the guard closed. */
export const KEEP_ALIVE_TIMEOUT_MS = 120_000;

/** Whether the guard can take traffic, and if not, why. */
export interface Readiness {
  readonly ready: boolean;
  readonly reasons: readonly string[];
}

/** What the HTTP layer needs; it builds nothing of its own. */
export interface AppDeps {
  readonly handleReview: ReviewHandler;
  readonly metrics: GuardMetrics;
  readonly logger: Logger;
  readonly readiness: () => Readiness;
  /** TLS material for the webhook server; omitted in tests that use `inject()`. */
  readonly tls?: { readonly key: string; readonly cert: string } | undefined;
}

/** The two servers: webhooks over HTTPS, and metrics and probes over plain HTTP. */
export interface GuardApp {
  readonly webhook: FastifyInstance;
  readonly ops: FastifyInstance;
}

/** Builds both fastify instances with their routes. Never listens: `main.ts` does. */
export function buildApp(deps: AppDeps): GuardApp {
  return { webhook: buildWebhookApp(deps), ops: buildOpsApp(deps) };
}

function buildWebhookApp(deps: AppDeps): FastifyInstance {
  const common = {
    loggerInstance: deps.logger as FastifyBaseLogger,
    // Request logs would repeat the audit line without its facts; decisions log themselves.
    logController: new LogController({ disableRequestLogging: true }),
    // No child logger per request: creating one costs more than the non-agent path's own
    // work, and the guard's log lines name the review's uid themselves.
    childLoggerFactory: (logger: FastifyBaseLogger) => logger,
    bodyLimit: BODY_LIMIT_BYTES,
    keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
  } as const;
  // The HTTPS instance differs from the plain one only in its server type; routes are the same.
  const app: FastifyInstance = deps.tls
    ? (Fastify({ ...common, https: { key: deps.tls.key, cert: deps.tls.cert } }) as unknown as FastifyInstance)
    : Fastify(common);
  // fastify also parses text/plain by default; a review is JSON, anything else is refused.
  app.removeContentTypeParser('text/plain');
  // Read as one buffer and decoded once: fastify's own JSON parser appends each chunk to a
  // string, which JSON.parse must then flatten, a third of the fast path's parse on a 4 KiB
  // review. The body is only read field by field, never merged into other objects, so
  // prototype keys in it are inert.
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (_request, body, done) => {
    try {
      done(null, JSON.parse(body.toString('utf8')));
    } catch (err) {
      done(err instanceof Error ? err : new SyntaxError(String(err)), undefined);
    }
  });

  app.setErrorHandler((error: FastifyError, request, reply) => {
    const code = errorCodeOf(error);
    deps.metrics.errors.inc({ code });
    if (code === 'RG_ERR_INTERNAL') request.log.error({ err: error, reqId: request.id, url: request.url }, 'webhook request failed');
    void reply.status(ERROR_CODES[code] === 200 ? 500 : ERROR_CODES[code]).send({ code, message: messageOf(code, error) });
  });
  app.setNotFoundHandler((request, reply) => {
    void reply.status(404).send({ code: 'RG_ERR_NOT_FOUND', message: `no route ${request.method} ${request.url}` });
  });

  for (const webhook of ['mutate', 'validate'] as const satisfies readonly Webhook[]) {
    app.post<{ Querystring: { timeout?: string } }>(`/${webhook}`, async (request, reply) => {
      const result = await deps.handleReview(webhook, request.body, request.query.timeout);
      return reply.status(result.status).send(result.body);
    });
  }
  return app;
}

function errorCodeOf(error: FastifyError): ErrorCode {
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return 'RG_ERR_BODY_TOO_LARGE';
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return 'RG_ERR_BAD_CONTENT_TYPE';
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return 'RG_ERR_BAD_JSON';
    default:
      return error instanceof SyntaxError || error.statusCode === 400 ? 'RG_ERR_BAD_JSON' : 'RG_ERR_INTERNAL';
  }
}

function messageOf(code: ErrorCode, error: FastifyError): string {
  switch (code) {
    case 'RG_ERR_BODY_TOO_LARGE':
      return `the body is larger than ${BODY_LIMIT_BYTES} bytes`;
    case 'RG_ERR_BAD_CONTENT_TYPE':
      return `the body must be sent as application/json (${error.message})`;
    case 'RG_ERR_BAD_JSON':
      return `the body is not valid JSON: ${error.message}`;
    default:
      return 'internal error; see the guard logs';
  }
}

function buildOpsApp(deps: AppDeps): FastifyInstance {
  const app: FastifyInstance = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
  });
  app.get('/metrics', async (_request, reply) => {
    const body = await deps.metrics.registry.metrics();
    return reply.type(deps.metrics.registry.contentType).send(body);
  });
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => {
    const r = deps.readiness();
    return reply.status(r.ready ? 200 : 503).send({ ready: r.ready, reasons: r.reasons });
  });
  return app;
}
