/**
 * Data path: a large input (1 GiB by default) uploaded through the client to a coordinator running as a child
 * process (`deqo coordinator`, SQLite, blobs in its data folder), then downloaded back, against a plain copy
 * of the same file on the same disk (`fs.copyFile` without copy-on-write cloning: an in-kernel copy on ext4).
 * The coordinator's RSS (VmRSS) is sampled every 100 ms; growth is the peak over its idle RSS. A verified
 * output is downloaded through the same route as any blob, so the download stands for both.
 *
 * The file is random bytes; `sync` runs before each timed step so each starts with no dirty pages. The file
 * stays in the page cache (the machine has far more memory than the file): the figures are of the copy and
 * HTTP paths, with the disk writing back in the background, as a just-made input would be.
 */
import { execFile } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { open, copyFile, mkdtemp, rm, stat } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { DeqoClient, downloadBlob, sha256File, uploadFile } from '../client/index.js';
import { createBenchAccounts, startCoordinatorProcess } from './coordinator-process.js';
import { processCpuSeconds, processRssBytes, round, sampleRss } from './stats.js';

const exec = promisify(execFile);
const MiB = 1024 * 1024;

/** Settings of a data-path run. */
export interface DatapathOptions {
  sizeMiB: number;
}

/** Results of a data-path run. Throughputs in MiB/s, memory in MiB. */
export interface DatapathResult {
  benchmark: 'datapath';
  sizeMiB: number;
  copyMiBps: number;
  uploadMiBps: number;
  downloadMiBps: number;
  /** Upload and download throughput as a fraction of the plain copy's. */
  uploadVsCopy: number;
  downloadVsCopy: number;
  coordinatorIdleRssMiB: number;
  /** Peak RSS over the idle RSS during the upload and during the download. */
  uploadRssGrowthMiB: number;
  downloadRssGrowthMiB: number;
  rssSamples: number;
  /** CPU seconds the coordinator and this process (the client) used during the upload and the download. */
  cpuS: {
    uploadCoordinator: number | null;
    uploadClient: number;
    downloadCoordinator: number | null;
    downloadClient: number;
  };
  loadAverageAtStart: number;
  target: { rssGrowthMiB: number; fractionOfCopy: number; met: boolean };
}

/** The targets: memory growth under 100 MB, at least half the plain copy's throughput. */
export const DATAPATH_TARGET = { rssGrowthMiB: round(100e6 / MiB), fractionOfCopy: 0.5 };

/** Writes `bytes` random bytes to `path` in 4 MiB chunks; returns their SHA-256 (hex). */
async function writeRandomFile(path: string, bytes: number): Promise<string> {
  const fh = await open(path, 'w');
  const hash = createHash('sha256');
  const chunk = Buffer.alloc(4 * MiB);
  try {
    for (let done = 0; done < bytes;) {
      const n = Math.min(chunk.length, bytes - done);
      const part = randomFillSync(chunk.subarray(0, n));
      hash.update(part);
      await fh.write(part, 0, n);
      done += n;
    }
  } finally {
    await fh.close();
  }
  return hash.digest('hex');
}

/** Times `fn` after a `sync`: wall ms, and CPU seconds of process `pid` (null if unreadable) and of this process. */
async function timed(
  fn: () => Promise<unknown>,
  pid?: number,
): Promise<{ ms: number; cpuPid: number | null; cpuSelf: number }> {
  await exec('sync');
  const cpu0 = pid === undefined ? null : processCpuSeconds(pid);
  const self0 = process.cpuUsage();
  const t = performance.now();
  await fn();
  const ms = performance.now() - t;
  const cpu1 = pid === undefined ? null : processCpuSeconds(pid);
  const self = process.cpuUsage(self0);
  return {
    ms,
    cpuPid: cpu0 !== null && cpu1 !== null ? round(cpu1 - cpu0, 2) : null,
    cpuSelf: round((self.user + self.system) / 1e6, 2),
  };
}

/** Runs the data-path benchmark. Throws if a transfer is corrupted. */
export async function runDatapath(o: DatapathOptions): Promise<DatapathResult> {
  const dir = await mkdtemp(join(tmpdir(), 'deqo-bench-datapath-'));
  const bytes = o.sizeMiB * MiB;
  try {
    const src = join(dir, 'input.bin');
    const sha = await writeRandomFile(src, bytes);
    const copyMs = (await timed(() => copyFile(src, join(dir, 'copy.bin')))).ms;
    await rm(join(dir, 'copy.bin'));

    const coord = await startCoordinatorProcess({
      dataDir: join(dir, 'coordinator'),
      adminKeyFile: join(dir, 'admin.key'),
    });
    try {
      const pid = coord.pid!;
      const { buyerKeys } = await createBenchAccounts(coord.url, coord.adminKey, 1, 0, 1);
      const client = new DeqoClient(coord.url, buyerKeys[0]!);
      await client.whoami();
      // Idle RSS: the highest of 10 samples over a second, after the first requests warmed it.
      let idle = 0;
      for (let i = 0; i < 10; i++) {
        idle = Math.max(idle, processRssBytes(pid) ?? 0);
        await new Promise((r) => setTimeout(r, 100));
      }
      const loadAverageAtStart = loadavg()[0]!;

      let sampler = sampleRss(pid);
      let uploaded = '';
      const upT = await timed(async () => {
        uploaded = (await uploadFile(client, src)).sha256;
      }, pid);
      const up = sampler.stop();
      if (uploaded !== sha) throw new Error(`uploaded blob hashes to ${uploaded}, the file to ${sha}`);

      const dest = join(dir, 'download.bin');
      sampler = sampleRss(pid);
      const downT = await timed(() => downloadBlob(client, sha, dest), pid);
      const down = sampler.stop();
      if ((await stat(dest)).size !== bytes || (await sha256File(dest)) !== sha)
        throw new Error('the downloaded file differs from the upload');

      const mibps = (ms: number) => round(o.sizeMiB / (ms / 1000));
      const growth = (peak: number) => round(Math.max(0, peak - idle) / MiB);
      const r = { copy: mibps(copyMs), upload: mibps(upT.ms), download: mibps(downT.ms) };
      const upGrowth = growth(up.peakBytes);
      const downGrowth = growth(down.peakBytes);
      return {
        benchmark: 'datapath',
        sizeMiB: o.sizeMiB,
        copyMiBps: r.copy,
        uploadMiBps: r.upload,
        downloadMiBps: r.download,
        uploadVsCopy: round(r.upload / r.copy, 2),
        downloadVsCopy: round(r.download / r.copy, 2),
        coordinatorIdleRssMiB: round(idle / MiB),
        uploadRssGrowthMiB: upGrowth,
        downloadRssGrowthMiB: downGrowth,
        rssSamples: up.samples + down.samples,
        cpuS: {
          uploadCoordinator: upT.cpuPid,
          uploadClient: upT.cpuSelf,
          downloadCoordinator: downT.cpuPid,
          downloadClient: downT.cpuSelf,
        },
        loadAverageAtStart: round(loadAverageAtStart, 2),
        target: {
          ...DATAPATH_TARGET,
          met:
            Math.max(upGrowth, downGrowth) < DATAPATH_TARGET.rssGrowthMiB &&
            Math.min(r.upload, r.download) >= DATAPATH_TARGET.fractionOfCopy * r.copy,
        },
      };
    } finally {
      await coord.stop();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
