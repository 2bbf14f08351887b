import { z } from 'zod';
import { configSchema } from '../config.ts';

/**
 * The JSON Schema (draft-07, as values.schema.json) of the guard's configuration on its
 * input side, every field optional: what the chart's `config` value may hold. The guard
 * validates the merged configuration again at start (cross-field rules included).
 */
export function guardConfigJsonSchema(): Record<string, unknown> {
  const { $schema: _ignored, ...schema } = z.toJSONSchema(configSchema, {
    io: 'input',
    target: 'draft-7',
    override: ({ jsonSchema }) => {
      if (jsonSchema.maximum === Number.MAX_SAFE_INTEGER) delete jsonSchema.maximum;
      if (jsonSchema.minimum === Number.MIN_SAFE_INTEGER) delete jsonSchema.minimum;
    },
  });
  return { ...schema, description: "extra configuration of the guard, merged over what the chart sets (the guard's README, Configuration)" };
}

/** values.schema.json with its `config` property replaced by {@link guardConfigJsonSchema}, as `npm run chart` writes it. */
export function withGuardConfigSchema(valuesSchemaText: string): string {
  const schema = JSON.parse(valuesSchemaText) as { properties?: Record<string, unknown> };
  if (schema.properties === undefined) throw new Error('values.schema.json has no properties');
  schema.properties.config = guardConfigJsonSchema();
  return `${JSON.stringify(schema, null, 2)}\n`;
}
