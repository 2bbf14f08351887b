import YAML from 'yaml';
import { webhookRules } from '../admission/webhook-rules.ts';

/**
 * The chart's copy of the webhook rules (charts/replica-guard/webhook-rules.yaml): the
 * built-in list of src/admission/webhook-rules.ts, which the templates render into both
 * configurations before the scale and custom resources of the values. Helm cannot run
 * TypeScript, so the list is generated and a test keeps the copy in sync.
 */
export function renderWebhookRulesFile(): string {
  const header = [
    '# Generated from src/admission/webhook-rules.ts by `npm run chart`: edit the source, never this file.',
    '# The templates render these rules into both webhook configurations.',
  ].join('\n');
  return `${header}\n${YAML.stringify({ rules: webhookRules() })}`;
}
