import { describe, expect, it } from 'vitest';
import { type FieldSet, GUARD_FIELD_MANAGER, handedBack, type ManagedFieldsEntry, unionOf } from './field-ownership.ts';

const hook = 'k:{"name":"validate.replica-guard.io"}';
const chart: ManagedFieldsEntry = {
  manager: 'helm',
  operation: 'Apply',
  apiVersion: 'admissionregistration.k8s.io/v1',
  fieldsType: 'FieldsV1',
  fieldsV1: { 'f:metadata': { 'f:labels': { 'f:app': {} } }, 'f:webhooks': { [hook]: { '.': {}, 'f:name': {}, 'f:rules': {} } } },
};
const guard = (fields: FieldSet): ManagedFieldsEntry => ({ manager: GUARD_FIELD_MANAGER, operation: 'Update', apiVersion: 'admissionregistration.k8s.io/v1', fieldsType: 'FieldsV1', fieldsV1: fields });

describe('handedBack', () => {
  it('moves what the guard restored to the chart apply entry and keeps the caBundle with the guard', () => {
    const restored = guard({ 'f:webhooks': { [hook]: { 'f:timeoutSeconds': {}, 'f:clientConfig': { 'f:caBundle': {} } } } });
    const other: ManagedFieldsEntry = { manager: 'kubectl-edit', operation: 'Update', fieldsV1: { 'f:metadata': { 'f:annotations': {} } } };
    const out = handedBack([chart, restored, other], { keepCaBundle: true });
    expect(out).toEqual([
      { ...chart, fieldsV1: { 'f:metadata': { 'f:labels': { 'f:app': {} } }, 'f:webhooks': { [hook]: { '.': {}, 'f:name': {}, 'f:rules': {}, 'f:timeoutSeconds': {} } } } },
      { ...restored, fieldsV1: { 'f:webhooks': { [hook]: { 'f:clientConfig': { 'f:caBundle': {} } } } } },
      other,
    ]);
  });

  it('drops the guard entry when it keeps nothing (a caBundle the chart declares)', () => {
    const restored = guard({ 'f:webhooks': { [hook]: { 'f:clientConfig': { 'f:caBundle': {} } } } });
    const out = handedBack([chart, restored], { keepCaBundle: false });
    expect(out?.map((e) => e.manager)).toEqual(['helm']);
    expect(out?.[0]?.fieldsV1?.['f:webhooks']?.[hook]?.['f:clientConfig']).toEqual({ 'f:caBundle': {} });
  });

  it('has nothing to hand over without an apply entry, or when the guard owns only the caBundle', () => {
    const onlyBundle = guard({ 'f:webhooks': { [hook]: { 'f:clientConfig': { 'f:caBundle': {} } } } });
    expect(handedBack([{ ...chart, operation: 'Update' }, guard({ 'f:webhooks': {} })], { keepCaBundle: true })).toBeUndefined();
    expect(handedBack([chart, onlyBundle], { keepCaBundle: true })).toBeUndefined();
    expect(handedBack([chart], { keepCaBundle: true })).toBeUndefined();
  });

  it('unionOf merges nested sets', () => {
    expect(unionOf({ a: { b: {} } }, { a: { c: {} }, d: {} })).toEqual({ a: { b: {}, c: {} }, d: {} });
  });
});
