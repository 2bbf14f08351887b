/**
 * `npm run chart`: rewrites the chart's generated parts from their sources: the webhook
 * rules (src/admission/webhook-rules.ts), the schema of the `config` value (src/config.ts)
 * and the README's values table (values.yaml).
 */
import { readFile, writeFile } from 'node:fs/promises';
import { renderValuesTable, documentedValues, withValuesTable } from './values-table.ts';
import { withGuardConfigSchema } from './values-schema.ts';
import { renderWebhookRulesFile } from './webhook-rules-file.ts';

/** Where the chart lives, from the repository root. */
export const CHART_DIR = 'charts/replica-guard';

if (import.meta.main) {
  await writeFile(`${CHART_DIR}/webhook-rules.yaml`, renderWebhookRulesFile());
  const values = await readFile(`${CHART_DIR}/values.yaml`, 'utf8');
  const readmePath = `${CHART_DIR}/README.md`;
  const readme = await readFile(readmePath, 'utf8');
  await writeFile(readmePath, withValuesTable(readme, renderValuesTable(documentedValues(values))));
  const schemaPath = `${CHART_DIR}/values.schema.json`;
  await writeFile(schemaPath, withGuardConfigSchema(await readFile(schemaPath, 'utf8')));
  process.stdout.write(`wrote ${CHART_DIR}/webhook-rules.yaml, the config part of ${schemaPath} and the values table of ${readmePath}\n`);
}
