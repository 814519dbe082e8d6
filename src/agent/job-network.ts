/**
 * The network of jobs that ask for one, on a provider started with `--allow-network`: a dedicated Docker bridge
 * (`deqo-jobs`, interface `deqo-jobs0`, containers cannot talk to each other) fenced with iptables so a job reaches
 * the internet but not the provider's own machine nor its private networks:
 * - INPUT (and ip6tables INPUT): everything from the bridge to the host itself is dropped, whatever address the
 *   job uses (the gateway, a LAN or public address of the host, a service bound to 0.0.0.0);
 * - DOCKER-USER jumps to chain DEQO-JOBS for traffic from the bridge, which drops RFC 1918 (10/8, 172.16/12,
 *   192.168/16), link-local 169.254/16 (cloud metadata), 127/8 and CGNAT 100.64/10 (RFC 6598) destinations, except
 *   DNS (port 53) to the resolvers in the host's resolv.conf, which Docker's embedded DNS forwards to. The bridge has
 *   no IPv6 (so fc00::/7 and fe80::/10 are unrouted; the host's link-local address is behind ip6tables INPUT).
 * The rules are idempotent (checked with -C before insertion; the chain is flushed and refilled) and survive the
 * agent; they match only the bridge's interface, so nothing else on the host changes. `--allow-private-network`
 * skips all this: network jobs then use Docker's default `bridge` as before.
 */
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import type Docker from 'dockerode';

/** Names of the fenced network: Docker network, bridge interface, iptables chain. */
export interface JobNetworkNames {
  network: string;
  bridge: string;
  chain: string;
}

/** The fenced network's default names. */
export const JOB_NETWORK: JobNetworkNames = { network: 'deqo-jobs', bridge: 'deqo-jobs0', chain: 'DEQO-JOBS' };

/** IPv4 destinations a fenced job may not reach (besides the host itself): RFC 1918, link-local, loopback, CGNAT. */
export const PRIVATE_RANGES_V4 = [
  '10.0.0.0/8',
  '172.16.0.0/12',
  '192.168.0.0/16',
  '169.254.0.0/16',
  '127.0.0.0/8',
  '100.64.0.0/10',
];

/** One iptables command: the binary and its arguments (without -w, added when run). */
export interface FenceCommand {
  bin: 'iptables' | 'ip6tables';
  args: string[];
}

/** What a fence needs: a rule to add unless present (`check` args with -C), or a command to run as is. */
export type FenceStep = { ensure: FenceCommand; insert: string[] } | { run: FenceCommand };

/** IPv4 nameservers in resolv.conf text (`nameserver <ip>` lines), in order. */
export function parseResolvers(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*nameserver\s+(\d{1,3}(?:\.\d{1,3}){3})\s*$/.exec(line);
    if (m) out.push(m[1]!);
  }
  return out;
}

/**
 * The steps that fence bridge `names.bridge`, in order, with DNS allowed to `resolvers` (IPv4 addresses). `ipv6`:
 * whether to also drop IPv6 traffic to the host (when ip6tables exists).
 */
export function fenceSteps(names: JobNetworkNames, resolvers: string[], ipv6: boolean): FenceStep[] {
  const v4 = (...args: string[]): FenceCommand => ({ bin: 'iptables', args });
  const steps: FenceStep[] = [
    { run: v4('-N', names.chain) }, // fails when it exists: runFence ignores that one error
    { run: v4('-F', names.chain) },
  ];
  for (const r of resolvers)
    for (const proto of ['udp', 'tcp'])
      steps.push({ run: v4('-A', names.chain, '-d', r, '-p', proto, '--dport', '53', '-j', 'RETURN') });
  for (const range of PRIVATE_RANGES_V4) steps.push({ run: v4('-A', names.chain, '-d', range, '-j', 'DROP') });
  const jump = ['DOCKER-USER', '-i', names.bridge, '-j', names.chain];
  steps.push({ ensure: v4('-C', ...jump), insert: ['-I', 'DOCKER-USER', '1', ...jump.slice(1)] });
  const host = ['INPUT', '-i', names.bridge, '-j', 'DROP'];
  steps.push({ ensure: v4('-C', ...host), insert: ['-I', 'INPUT', '1', ...host.slice(1)] });
  if (ipv6)
    steps.push({ ensure: { bin: 'ip6tables', args: ['-C', ...host] }, insert: ['-I', 'INPUT', '1', ...host.slice(1)] });
  return steps;
}

/** Runs an iptables binary; rejects with its stderr. */
export type IptablesRunner = (bin: string, args: string[]) => Promise<void>;

const execFileP = promisify(execFile);

/** Runs iptables with -w (waits for the xtables lock Docker also takes). */
export const runIptables: IptablesRunner = async (bin, args) => {
  await execFileP(bin, ['-w', ...args], { timeout: 30_000 });
};

/** Why the fence could not be put up, with the fix. */
export class NetworkFenceError extends Error {
  override readonly name = 'NetworkFenceError';
}

/** Runs `steps` with `run`; an `ensure` step inserts its rule only when the check fails. */
export async function runFence(steps: FenceStep[], run: IptablesRunner): Promise<void> {
  for (const step of steps) {
    if ('ensure' in step) {
      const present = await run(step.ensure.bin, step.ensure.args).then(
        () => true,
        () => false,
      );
      if (!present) await run(step.ensure.bin, step.insert);
    } else {
      const isCreate = step.run.args[0] === '-N';
      await run(step.run.bin, step.run.args).catch((err: unknown) => {
        if (!(isCreate && /exists/i.test(String((err as { stderr?: unknown }).stderr ?? err)))) throw err;
      });
    }
  }
}

/** Options of prepareJobNetwork. */
export interface JobNetworkOptions {
  /** Let network jobs reach the host and private networks: use Docker's default bridge, no fence. */
  allowPrivateNetwork: boolean;
  names?: JobNetworkNames;
  /** resolv.conf files whose nameservers DNS may reach (default /etc/resolv.conf, systemd-resolved's upstream). */
  resolvConf?: string[];
  run?: IptablesRunner;
}

/**
 * Makes the network that jobs asking for one run on and returns its name for the container's NetworkMode:
 * `bridge` with allowPrivateNetwork, else the fenced network (created when missing, rules put up every time).
 * Throws NetworkFenceError (saying how to fix it) when the Docker network or the iptables rules cannot be made.
 */
export async function prepareJobNetwork(docker: Docker, opts: JobNetworkOptions): Promise<string> {
  if (opts.allowPrivateNetwork) return 'bridge';
  const names = opts.names ?? JOB_NETWORK;
  const run = opts.run ?? runIptables;
  try {
    const existing = await docker.listNetworks({ filters: { name: [names.network] } });
    if (!existing.some((n) => n.Name === names.network))
      await docker.createNetwork({
        Name: names.network,
        Driver: 'bridge',
        EnableIPv6: false,
        Labels: { 'deqo.network': 'jobs' },
        Options: {
          'com.docker.network.bridge.name': names.bridge,
          'com.docker.network.bridge.enable_icc': 'false',
        },
      });
  } catch (err) {
    throw new NetworkFenceError(`cannot create the Docker network ${names.network} for network jobs: ${String(err)}`);
  }
  const resolvers = new Set<string>();
  for (const path of opts.resolvConf ?? ['/etc/resolv.conf', '/run/systemd/resolve/resolv.conf']) {
    const text = await readFile(path, 'utf8').catch(() => '');
    for (const r of parseResolvers(text)) if (!r.startsWith('127.')) resolvers.add(r);
  }
  const ipv6 = await run('ip6tables', ['-L', 'INPUT', '-n']).then(
    () => true,
    () => false,
  );
  try {
    await runFence(fenceSteps(names, [...resolvers], ipv6), run);
  } catch (err) {
    const detail = String((err as { stderr?: unknown }).stderr || (err as Error).message || err).trim();
    throw new NetworkFenceError(
      `cannot fence network jobs off this machine and its private networks with iptables (${detail}): run the ` +
        'agent as root with iptables installed and Docker managing iptables, or pass --allow-private-network to ' +
        'let network jobs reach this machine and your private networks',
    );
  }
  return names.network;
}
