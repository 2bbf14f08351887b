import type { LoggerOptions } from 'pino';

/**
 * Logger options. Object bodies never reach a log line (environment values in pod
 * templates hold secrets), and in case one slips into an error these paths are redacted.
 */
export function loggerOptions(level: string): LoggerOptions {
  return {
    level,
    base: { service: 'replica-guard' },
    timestamp: () => `,"time":"${new Date().toISOString()}"`,
    redact: {
      paths: ['object', 'oldObject', 'request.object', 'request.oldObject', 'body', '*.object', '*.oldObject'],
      censor: '[redacted]',
    },
    formatters: { level: (label) => ({ level: label }) },
  };
}
