/**
 * `deqo coordinator --metrics` as an operator runs it (a separate process, built CLI): JSON log lines on stdout
 * naming the metrics URL, and GET /metrics answering without an API key; without the flag there is no /metrics.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DEQO_BIN } from '../../src/cli/network.js';

const running: ChildProcess[] = [];
afterEach(async () => {
  for (const p of running.splice(0)) {
    const exited = new Promise((r) => p.once('exit', r));
    p.kill('SIGTERM');
    await exited;
  }
});

/** Starts `deqo coordinator` on a free port; resolves with its URL and its stdout log lines parsed as JSON. */
async function coordinator(...flags: string[]): Promise<{ url: string; logLines: Array<Record<string, unknown>> }> {
  const home = await mkdtemp(join(tmpdir(), 'deqo-coord-cli-'));
  const p = spawn(
    process.execPath,
    [DEQO_BIN, 'coordinator', '--port', '0', '--data-dir', join(home, 'coordinator'), ...flags],
    { env: { ...process.env, DEQO_HOME: home }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  running.push(p);
  const logLines: Array<Record<string, unknown>> = [];
  let out = '';
  let err = '';
  p.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
  });
  const url = await new Promise<string>((resolve, reject) => {
    p.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const lines = out.split('\n');
      out = lines.pop()!;
      for (const l of lines) {
        const line = JSON.parse(l) as Record<string, unknown>;
        logLines.push(line);
        if (line.msg === 'coordinator listening') resolve(line.url as string);
      }
    });
    p.once('exit', (code) => reject(new Error(`deqo coordinator exited ${code}: ${err}`)));
  });
  return { url, logLines };
}

describe('deqo coordinator --metrics', () => {
  it('serves GET /metrics without an API key and says where in its JSON log', async () => {
    const { url, logLines } = await coordinator('--metrics');
    expect(logLines.find((l) => l.msg === 'coordinator listening')).toMatchObject({
      svc: 'coordinator',
      metrics: `${url}/metrics`,
      level: 30,
    });
    const res = await fetch(`${url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('version=0.0.4');
    expect(await res.text()).toMatch(/^deqo_agents\{status="online"\} 0$/m);
  });

  it('has no /metrics without the flag', async () => {
    const { url } = await coordinator();
    expect((await fetch(`${url}/metrics`)).status).toBe(404);
  });
});
