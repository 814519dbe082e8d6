/**
 * The fence of network jobs (src/agent/job-network.ts) for real: iptables rules on this host and real containers
 * (deqo/busybox:test). A service bound to 0.0.0.0 on the host answers a job on Docker's default bridge (what
 * `--allow-private-network` keeps) at every host address, and answers nothing from the fenced network, whatever
 * address the job tries — also for a job the DockerExecutor runs. The rules match only the test's own bridge and are
 * removed afterwards. Needs root (iptables).
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DockerExecutor } from '../../src/agent/docker-executor.js';
import { prepareJobNetwork, PRIVATE_RANGES_V4, type JobNetworkNames } from '../../src/agent/job-network.js';
import { LimitsSchema, ResourcesSchema } from '../../src/protocol/index.js';

const exec = promisify(execFile);
const docker = new Docker({ socketPath: '/var/run/docker.sock' });
const id = randomBytes(3).toString('hex');
const NAMES: JobNetworkNames = { network: `deqo-test-${id}`, bridge: `dqt${id}`, chain: `DEQO-TEST-${id}` };
/** A port of this suite's range, for the host service a job should not reach. */
const PORT = 47521;
let server: Server;

/** The host's own IPv4 addresses other than loopback. */
const hostAddresses = () =>
  Object.values(networkInterfaces())
    .flat()
    .filter((a) => a && a.family === 'IPv4' && !a.internal)
    .map((a) => a!.address);

/** Runs a busybox container on `network` that tries the host service at each address; returns `addr: reply` lines. */
async function probe(network: string, addresses: string[]): Promise<string[]> {
  const script = addresses
    .map((a) => `echo "${a}: $(nc -w 2 ${a} ${PORT} </dev/null 2>/dev/null || echo unreachable)"`)
    .join('; ');
  const { stdout } = await exec('docker', [
    'run',
    '--rm',
    '--network',
    network,
    'deqo/busybox:test',
    'sh',
    '-c',
    `GW=$(ip route | awk '/default/{print $3}'); echo "gateway: $(nc -w 2 $GW ${PORT} </dev/null 2>/dev/null || echo unreachable)"; ${script}`,
  ]);
  return stdout.trim().split('\n');
}

beforeAll(async () => {
  server = createServer((s) => s.end('host-service\n'));
  await new Promise<void>((resolve) => server.listen(PORT, '0.0.0.0', resolve));
});
afterAll(async () => {
  server?.close();
  const ipt = (bin: string, ...args: string[]) => exec(bin, ['-w', ...args]).catch(() => undefined);
  await ipt('iptables', '-D', 'DOCKER-USER', '-i', NAMES.bridge, '-j', NAMES.chain);
  await ipt('iptables', '-D', 'INPUT', '-i', NAMES.bridge, '-j', 'DROP');
  await ipt('ip6tables', '-D', 'INPUT', '-i', NAMES.bridge, '-j', 'DROP');
  await ipt('iptables', '-F', NAMES.chain);
  await ipt('iptables', '-X', NAMES.chain);
  await docker
    .getNetwork(NAMES.network)
    .remove()
    .catch(() => undefined);
});

describe('network jobs', () => {
  it('with --allow-private-network run on the default bridge and reach a host service at every address', async () => {
    const network = await prepareJobNetwork(docker, { allowPrivateNetwork: true, names: NAMES });
    expect(network).toBe('bridge');
    const got = await probe(network, hostAddresses());
    expect(got.every((l) => l.endsWith(': host-service'))).toBe(true);
  });

  it('on the fenced network reach no host service, at the gateway or any host address', async () => {
    const network = await prepareJobNetwork(docker, { allowPrivateNetwork: false, names: NAMES });
    expect(network).toBe(NAMES.network);
    await prepareJobNetwork(docker, { allowPrivateNetwork: false, names: NAMES }); // idempotent
    const addresses = hostAddresses(); // now with the fenced bridge's own
    const got = await probe(network, addresses);
    expect(got.length).toBe(1 + addresses.length);
    expect(got.every((l) => l.endsWith(': unreachable'))).toBe(true);
    const { stdout } = await exec('iptables', ['-w', '-S', NAMES.chain]);
    for (const r of PRIVATE_RANGES_V4) expect(stdout).toContain(`-A ${NAMES.chain} -d ${r} -j DROP`);
    const jumps = (await exec('iptables', ['-w', '-S', 'DOCKER-USER'])).stdout.split('\n');
    expect(jumps.filter((l) => l.includes(`-j ${NAMES.chain}`))).toHaveLength(1);
  });

  it('asked for by a job the executor runs use the fenced network', async () => {
    const executor = new DockerExecutor({ agentId: `itest-${id}` });
    expect(await executor.prepareNetwork({ allowPrivateNetwork: false, names: NAMES })).toBe(NAMES.network);
    const dir = await mkdtemp(join(tmpdir(), 'deqo-fence-'));
    try {
      await mkdir(join(dir, 'inputs'));
      const script = `GW=$(ip route | awk '/default/{print $3}'); nc -w 2 $GW ${PORT} </dev/null || echo unreachable`;
      const req = {
        executionId: `it-${id}`,
        fencingToken: 1,
        image: 'deqo/busybox:test',
        command: ['sh', '-c', script],
        env: {},
        resources: { ...ResourcesSchema.parse({}), timeoutSeconds: 60 },
        limits: LimitsSchema.parse({}),
        hostInputsDir: join(dir, 'inputs'),
        hostOutputDir: join(dir, 'outputs'),
        outputDir: '/outputs',
        stdoutPath: join(dir, 'stdout'),
        stderrPath: join(dir, 'stderr'),
        network: true,
      };
      expect(await executor.run(req)).toMatchObject({ kind: 'exited', exitCode: 0 });
      expect((await readFile(req.stdoutPath, 'utf8')).trim()).toBe('unreachable');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
