import { describe, expect, it } from 'vitest';
import { imageRepository, podFingerprints } from './fingerprint.ts';

describe('fingerprints', () => {
  it('strip tags and digests but keep registry ports', () => {
    expect(imageRepository('registry.example/agent:1.0')).toBe('registry.example/agent');
    expect(imageRepository('registry.example:5000/team/agent:2@sha256:abcd')).toBe('registry.example:5000/team/agent');
    expect(imageRepository('registry.example:5000/agent')).toBe('registry.example:5000/agent');
    expect(imageRepository('busybox')).toBe('busybox');
  });

  it('are equal for the same account, repository, command and args, whatever the tag', () => {
    const a = podFingerprints('agent-1', [{ image: 'r/agent:1.0', command: ['run'], args: ['--x'] }]);
    const b = podFingerprints('agent-1', [{ image: 'r/agent:2.0', command: ['run'], args: ['--x'] }]);
    expect(a).toEqual(b);
    expect(podFingerprints('agent-2', [{ image: 'r/agent:1.0', command: ['run'], args: ['--x'] }])[0]?.key).not.toBe(a[0]?.key);
    expect(podFingerprints('agent-1', [{ image: 'r/agent:1.0', command: ['run'] }])[0]?.key).not.toBe(a[0]?.key);
  });
});
