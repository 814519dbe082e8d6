/**
 * The fence of network jobs (src/agent/job-network.ts) without touching the host: the iptables steps it takes, in
 * order, and how they run (a rule inserted only when its check fails, an existing chain reused). The real rules
 * against real containers are test/integration/job-network.test.ts.
 */
import { describe, expect, it } from 'vitest';
import {
  fenceSteps,
  JOB_NETWORK,
  parseResolvers,
  PRIVATE_RANGES_V4,
  runFence,
  type FenceStep,
} from '../../src/agent/job-network.js';

/** The steps as the command lines they run first. */
const lines = (steps: FenceStep[]) =>
  steps.map((s) =>
    'ensure' in s ? `${s.ensure.bin} ${s.ensure.args.join(' ')}` : `${s.run.bin} ${s.run.args.join(' ')}`,
  );

describe('the network-job fence', () => {
  it('reads IPv4 nameservers from resolv.conf', () => {
    expect(parseResolvers('# c\nnameserver 10.0.0.2\nnameserver ::1\nsearch x\n nameserver 1.1.1.1 \n')).toEqual([
      '10.0.0.2',
      '1.1.1.1',
    ]);
  });

  it('lets DNS reach the resolvers, drops private ranges, and drops everything to the host, IPv6 too', () => {
    const got = lines(fenceSteps(JOB_NETWORK, ['10.0.0.2'], true));
    expect(got).toEqual([
      'iptables -N DEQO-JOBS',
      'iptables -F DEQO-JOBS',
      'iptables -A DEQO-JOBS -d 10.0.0.2 -p udp --dport 53 -j RETURN',
      'iptables -A DEQO-JOBS -d 10.0.0.2 -p tcp --dport 53 -j RETURN',
      ...PRIVATE_RANGES_V4.map((r) => `iptables -A DEQO-JOBS -d ${r} -j DROP`),
      'iptables -C DOCKER-USER -i deqo-jobs0 -j DEQO-JOBS',
      'iptables -C INPUT -i deqo-jobs0 -j DROP',
      'ip6tables -C INPUT -i deqo-jobs0 -j DROP',
    ]);
    expect(PRIVATE_RANGES_V4).toEqual(expect.arrayContaining(['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16']));
    expect(PRIVATE_RANGES_V4).toEqual(expect.arrayContaining(['169.254.0.0/16', '127.0.0.0/8']));
    expect(lines(fenceSteps(JOB_NETWORK, [], false)).some((l) => l.startsWith('ip6tables'))).toBe(false);
  });

  it('inserts a rule only when its check fails, and reuses a chain that exists', async () => {
    const ran: string[] = [];
    const present = new Set(['-C INPUT -i deqo-jobs0 -j DROP']);
    await runFence(fenceSteps(JOB_NETWORK, [], false), async (bin, args) => {
      const line = args.join(' ');
      ran.push(`${bin} ${line}`);
      if (args[0] === '-N') throw Object.assign(new Error('exit 1'), { stderr: 'iptables: Chain already exists.' });
      if (args[0] === '-C' && !present.has(line)) throw new Error('exit 1');
    });
    expect(ran).toContain('iptables -I DOCKER-USER 1 -i deqo-jobs0 -j DEQO-JOBS');
    expect(ran).not.toContain('iptables -I INPUT 1 -i deqo-jobs0 -j DROP');
  });

  it('fails when a rule cannot be put up', async () => {
    await expect(
      runFence(fenceSteps(JOB_NETWORK, [], false), async (_bin, args) => {
        if (args[0] !== '-C')
          throw Object.assign(new Error('exit 4'), { stderr: 'Permission denied (you must be root)' });
        throw new Error('exit 1');
      }),
    ).rejects.toMatchObject({ stderr: 'Permission denied (you must be root)' });
  });
});
