import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { POLICY_JSON_SCHEMA_ID, policyJsonSchema } from './policy-json-schema.ts';

const schemaFile = new URL('../../policies/schema.json', import.meta.url);

describe('policyJsonSchema', () => {
  it('describes a ReplicaPolicy document in draft 2020-12, defaults optional', () => {
    const schema = policyJsonSchema();
    expect(schema).toMatchObject({
      $schema: 'https://json-schema.org/draft/2020-12/schema',
      $id: POLICY_JSON_SCHEMA_ID,
      title: 'ReplicaPolicy',
      type: 'object',
      required: ['apiVersion', 'kind', 'metadata', 'spec'],
      additionalProperties: false,
      properties: {
        apiVersion: { const: 'replica-guard.io/v1alpha1' },
        spec: { required: ['mode', 'agents'], properties: { limits: { additionalProperties: false } } },
      },
    });
    expect(JSON.stringify(schema)).not.toContain(String(Number.MAX_SAFE_INTEGER));
  });

  it('matches the committed policies/schema.json', async () => {
    const committed = await readFile(schemaFile, 'utf8').catch(() => '(missing)');
    const generated = `${JSON.stringify(policyJsonSchema(), null, 2)}\n`;
    expect(committed, 'policies/schema.json is out of date with src/policy/policy-schema.ts: run `npm run schema` and commit the result').toBe(
      generated,
    );
  });
});
