import { z } from 'zod';
import { POLICY_API_VERSION, POLICY_KIND, policyDocumentSchema } from './policy-schema.ts';

/** Identifies the published schema; editors key their validation on it. */
export const POLICY_JSON_SCHEMA_ID = 'https://replica-guard.io/schemas/v1alpha1/replicapolicy.json';

/**
 * The JSON Schema (draft 2020-12) of one policy document, for editors and CI linters,
 * generated from the same zod schema the loader validates with. It describes the input
 * side: fields with defaults are optional. Refinements across fields (need.min ≤ need.max,
 * at least one agent) cannot be expressed and stay with `replica-guard check`.
 * `policies/schema.json` is this value written out by `npm run schema`.
 */
export function policyJsonSchema(): Record<string, unknown> {
  const { $schema, ...generated } = z.toJSONSchema(policyDocumentSchema, {
    io: 'input',
    target: 'draft-2020-12',
    override: ({ jsonSchema }) => {
      // zod bounds every integer to the safe range; in a policy those bounds are noise.
      if (jsonSchema.maximum === Number.MAX_SAFE_INTEGER) delete jsonSchema.maximum;
      if (jsonSchema.minimum === Number.MIN_SAFE_INTEGER) delete jsonSchema.minimum;
    },
  });
  return {
    $schema,
    $id: POLICY_JSON_SCHEMA_ID,
    title: POLICY_KIND,
    description: `A replica-guard policy (apiVersion ${POLICY_API_VERSION}, kind ${POLICY_KIND}): which identities are agents, and how far they may grow their instances.`,
    ...generated,
  };
}
