/**
 * `deqo demo`: the whole system on this machine. Starts a local network (coordinator + 3 agents), submits the
 * SVM sweep on the digits dataset (6 tasks, each verified 2-of-3), follows it live, downloads the verified
 * outputs, and prints the accuracy table with the providers that agreed on each row.
 */
import { spawn } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { DeqoClient } from '../../client/index.js';
import { formatDecimalCredits, formatDuration } from '../../core/index.js';
import { action, type CliContext } from '../command.js';
import { downloadResults } from '../download.js';
import { CliError, EXIT } from '../exit-codes.js';
import { followJob } from '../follow.js';
import { table } from '../format.js';
import type { LocalNetwork } from '../network.js';
import { readSpecFile, resolveSpec } from '../specfile.js';
import { parseIntFlag } from './units.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const DEMO_SPEC = join(ROOT, 'examples', 'svm-sweep', 'job.yaml');

/** Builds the demo image if it is missing (scripts/build-images.sh reuses a present one). */
async function ensureImage(): Promise<void> {
  const code = await new Promise<number>((res) => {
    const p = spawn('bash', [join(ROOT, 'scripts', 'build-images.sh'), 'sklearn'], {
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    p.on('exit', (c) => res(c ?? 1));
    p.on('error', () => res(1));
  });
  if (code !== 0)
    throw new CliError(
      'could not build the deqo/python-sklearn:bookworm image (see the messages above)',
      EXIT.ENVIRONMENT,
    );
}

/** Waits for the job's settlement (late replicas may still finish), then prints what moved: escrow, payments per provider, refund. */
async function printMoney(
  client: DeqoClient,
  jobId: string,
  net: LocalNetwork,
  say: (s: string) => void,
): Promise<void> {
  const deadline = Date.now() + 60_000;
  let view = await client.getJob(jobId);
  while (!view.billing.settled && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 250));
    view = await client.getJob(jobId);
  }
  const b = view.billing;
  say(
    `\ncredits: ${formatDecimalCredits(b.escrowHeld)} held in escrow; ${formatDecimalCredits(b.paid)} paid to providers for valid results; ${formatDecimalCredits(b.refunded)} refunded to the buyer`,
  );
  for (const [i, key] of net.providerKeys.entries()) {
    const provider = new DeqoClient(net.url, key);
    const [bal, rep] = [await provider.balance(), await provider.providerReputation(1)];
    say(
      `  provider-${i + 1}: earned ${formatDecimalCredits(bal.earned)}; reputation ${rep.reputation.score.toFixed(2)} (${rep.reputation.valid} valid, ${rep.reputation.invalid} invalid)`,
    );
  }
}

/** The dashboard's address with `key` in the fragment (never sent to the server; the app moves it to sessionStorage). */
export function dashboardUrl(url: string, key: string): string {
  return `${url}/#key=${encodeURIComponent(key)}`;
}

export function demoCommand(ctx: CliContext): Command {
  return new Command('demo')
    .description('run the demo: a local network runs a verified SVM hyper-parameter sweep on real data')
    .option('--agents <n>', 'provider agents to start [default 3]', parseIntFlag, 3)
    .option('--port <port>', 'coordinator port (0 = any free port) [default 0]', (v) => Number.parseInt(v, 10), 0)
    .option('--out <dir>', 'where to write the verified outputs [default ./deqo-demo-results]')
    .option('--stay', 'keep the network (and its dashboard) running after the demo, until Ctrl-C')
    .action(
      action(async (opts: { agents: number; port: number; out?: string; stay?: boolean }) => {
        const say = (s: string) => process.stdout.write(`${s}\n`);
        // Loaded when the demo runs, not for `deqo --help` or other commands (the coordinator, agents and Docker).
        const [{ DockerExecutor, ExecutorUnavailableError }, { startLocalNetwork }] = await Promise.all([
          import('../../agent/index.js'),
          import('../network.js'),
        ]);
        try {
          await new DockerExecutor({ agentId: 'demo' }).version();
        } catch (err) {
          if (err instanceof ExecutorUnavailableError) throw new CliError(err.message, EXIT.ENVIRONMENT);
          throw err;
        }
        await ensureImage();
        const dataDir = join(ctx.env.home, 'demo-network');
        await rm(dataDir, { recursive: true, force: true });
        say(`starting a local network: 1 coordinator (SQLite, ${dataDir}) and ${opts.agents} provider agents…`);
        const net = await startLocalNetwork({ dataDir, agents: opts.agents, port: opts.port, agentCpus: 1 });
        try {
          const client = new DeqoClient(net.url, net.buyerKey);
          say(
            `dashboard: ${dashboardUrl(net.url, net.buyerKey)}  (signed in as the demo buyer; the key stays in that browser tab)${opts.stay ? '' : '\n  open it now to watch the job live; the network stops when the demo ends (`deqo demo --stay` keeps it running)'}`,
          );
          for (const p of await client.listProviders())
            say(
              `  agent ${p.name} online: ${p.capacity.cpus} cores, ${p.capacity.memoryMb} MiB, docker ${p.capacity.dockerVersion}`,
            );
          const { raw, baseDir } = await readSpecFile(DEMO_SPEC);
          const spec = await resolveSpec(client, raw, baseDir);
          const quote = await client.quote(spec);
          say(
            `quote: at most ${formatDecimalCredits(quote.escrow)} held in escrow (the demo buyer has ${formatDecimalCredits(quote.balance)}); ${quote.matchingProviders} providers match`,
          );
          const started = Date.now();
          const { jobId, tasks } = await client.submitJob(spec);
          say(
            `submitted ${jobId}: ${spec.name}, ${tasks} tasks × ${spec.verification.replicas} replicas, accepted when ${spec.verification.quorum} agree`,
          );
          const view = await followJob(client, jobId, say);
          say(`job ${view.state} in ${formatDuration(Date.now() - started)}`);
          const results = await client.getResults(jobId);
          const outDir = resolve(opts.out ?? 'deqo-demo-results');
          const downloaded = await downloadResults(client, results, outDir);
          const rows = [];
          for (const d of downloaded) {
            const r = JSON.parse(await readFile(join(d.dir, 'result.json'), 'utf8')) as {
              C: number;
              gamma: number;
              accuracy: number;
            };
            const t = results.tasks.find((x) => x.taskIndex === d.taskIndex)!;
            rows.push({
              ...r,
              agreed: t.agreedBy.map((a) => a.agentName).join(' + '),
              hash: t.resultHash?.slice(0, 12) ?? '',
            });
          }
          rows.sort((a, b) => b.accuracy - a.accuracy || a.C - b.C);
          say('\nverified results (5-fold cross-validated accuracy of SVC on the UCI digits, best first):\n');
          process.stdout.write(
            table(
              ['C', 'GAMMA', 'ACCURACY', 'AGREED BY', 'RESULT HASH'],
              rows.map((r) => [String(r.C), String(r.gamma), r.accuracy.toFixed(4), r.agreed, r.hash]),
            ),
          );
          say(`\nverified outputs written to ${outDir}/task-<n>/result.json`);
          await printMoney(client, jobId, net, say);
          if (opts.stay) {
            say(
              `\nthe network keeps running for the dashboard: ${dashboardUrl(net.url, net.buyerKey)}  — Ctrl-C to stop`,
            );
            await new Promise<void>((resolve) => {
              process.once('SIGINT', () => resolve());
              process.once('SIGTERM', () => resolve());
            });
          }
          if (view.state !== 'succeeded') {
            say(
              `some tasks did not verify; see: deqo status ${jobId} --coordinator ${net.url} (while the network runs)`,
            );
            return EXIT.JOB_FAILED;
          }
          return EXIT.OK;
        } finally {
          await net.stop();
        }
      }),
    );
}
