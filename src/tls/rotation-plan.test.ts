import { describe, expect, it } from 'vitest';
import { generateCertificateAuthority, generateServingCertificate } from './certificates.ts';
import { planRotation, type SecretMaterial } from './rotation-plan.ts';

const DAY = 86_400_000;
const NOW = new Date('2030-01-01T00:00:00Z');
const NAMES = { dnsNames: ['guard.svc'], ipAddresses: ['127.0.0.1'] };
const facts = (over: Partial<Parameters<typeof planRotation>[1]> = {}) => ({ now: NOW, renewBeforeMs: 30 * DAY, ...NAMES, everyReplicaServesCurrent: false, ...over });

async function material(caDays = 3650, servingDays = 365): Promise<SecretMaterial> {
  const ca = await generateCertificateAuthority({ now: NOW, validityDays: caDays });
  const serving = await generateServingCertificate(ca, { ...NAMES, now: NOW, validityDays: servingDays });
  return { caCert: ca.cert, caKey: ca.key, cert: serving.cert, key: serving.key, bundle: ca.cert };
}

describe('planRotation', () => {
  it('does nothing while everything is fresh and covers the names', async () => {
    expect(planRotation(await material(), facts())).toEqual({ step: 'none' });
  });

  it('re-issues a serving certificate near expiry or lacking a name', async () => {
    const m = await material(3650, 20);
    expect(planRotation(m, facts())).toMatchObject({ step: 'reissue', reason: expect.stringMatching(/expires/) });
    expect(planRotation(await material(), facts({ dnsNames: ['other.svc'] }))).toMatchObject({ step: 'reissue', reason: expect.stringMatching(/other\.svc/) });
  });

  it('starts a new CA near the old one’s expiry, and retires the old one only when every replica serves the new', async () => {
    const old = await material(20, 20);
    expect(planRotation(old, facts())).toMatchObject({ step: 'new-ca' });
    const next = await material();
    const rotating: SecretMaterial = { ...next, bundle: old.caCert + next.caCert };
    expect(planRotation(rotating, facts({ everyReplicaServesCurrent: false }))).toEqual({ step: 'none' });
    expect(planRotation(rotating, facts({ everyReplicaServesCurrent: true }))).toEqual({ step: 'retire-old-ca' });
  });
});
