/**
 * What others wrote, printed on a buyer's terminal (src/cli/terminal.ts): escape sequences removed, other control
 * characters shown as \xNN, in text (a job's output), one-line fields (table cells, task lines with a failure's
 * detail) and JSON; and `deqo logs` against a real coordinator over HTTP: safe by default, the bytes unchanged with
 * --raw, escaped JSON with --json.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { logsCommand } from '../../src/cli/commands/read.js';
import { printJson, table, taskLine } from '../../src/cli/format.js';
import { readEnv } from '../../src/cli/settings.js';
import { terminalLine, terminalText } from '../../src/cli/terminal.js';
import { BlobStore, buildServer } from '../../src/coordinator/index.js';
import { grantTxn, toMicro } from '../../src/core/index.js';
import { DEFAULT_ENGINE_CONFIG, Engine } from '../../src/engine/index.js';
import type { TaskView } from '../../src/protocol/index.js';
import { openSqliteStore, type Store } from '../../src/store/index.js';
import { claimAll, completedReport, registerAgents, submitJob } from '../helpers/engine-flow.js';

/** A job's output that tries it all: colour, clear screen, title, clipboard write, hyperlink, 8-bit CSI, bell, CR. */
const HOSTILE =
  '\x1b[31mred\x1b[0m\x1b[2J\x1b]0;owned\x07\x1b]52;c;cm0gLXJmIH4=\x1b\\' +
  '\x1b]8;;https://evil.example\x07link\x1b]8;;\x07\x9b1Amoved\x1bcreset\x07bell\rover\r\nnext\tcol\n';
const SAFE = 'redlinkmovedreset\\x07bell\\x0dover\r\nnext\tcol\n';
// eslint-disable-next-line no-control-regex -- looking for control characters is the point
const ANY_CONTROL = /[\x00-\x1f\x7f-\x9f]/;
/** A control character other than a line feed (JSON's own line breaks). */
// eslint-disable-next-line no-control-regex -- looking for control characters is the point
const CONTROL_BUT_LF = /[\x00-\x09\x0b-\x1f\x7f-\x9f]/;

describe('terminal-safe text', () => {
  it('removes escape sequences and shows other control characters as \\xNN, keeping lines and tabs', () => {
    expect(terminalText(HOSTILE)).toBe(SAFE);
    expect(terminalText('plain text\n')).toBe('plain text\n');
    expect(terminalText('naïve ✓ 日本\n')).toBe('naïve ✓ 日本\n');
  });

  it('shows an unterminated control string rather than swallowing what follows', () => {
    expect(terminalText('\x1b]0;title never ends\nrest\n')).toBe('\\x1b]0;title never ends\nrest\n');
  });

  it('escapes line feeds, tabs and carriage returns in one-line fields', () => {
    expect(terminalLine('a\nb\tc\rd\x1b[1Ae\x7f')).toBe('a\\x0ab\\x09c\\x0dde\\x7f');
  });

  it('makes table cells and task lines (a failure detail from a provider) safe', () => {
    expect(table(['NAME'], [['x\x1b]0;t\x07y\nz']])).toBe('NAME\nxy\\x0az\n');
    const task = {
      index: 0,
      params: {},
      state: 'failed',
      executions: [],
      failure: { reason: 'infrastructure', blame: 'provider', message: 'disk\x1b[2J gone\x07' },
    } as unknown as TaskView;
    const line = taskLine(task);
    expect(line).toContain('disk gone\\x07');
    expect(line).not.toMatch(ANY_CONTROL);
  });

  it('prints JSON with every control character escaped, the same value', () => {
    const write = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    try {
      printJson({ text: 'a\x1b[2J\x9b1A\x7fb' });
      const printed = String(write.mock.calls[0]![0]);
      expect(printed).not.toMatch(CONTROL_BUT_LF);
      expect(JSON.parse(printed)).toEqual({ text: 'a\x1b[2J\x9b1A\x7fb' });
    } finally {
      write.mockRestore();
    }
  });
});

describe('deqo logs', () => {
  let store: Store;
  let blobs: BlobStore;
  let app: ReturnType<typeof buildServer>;
  let env: ReturnType<typeof readEnv>;
  let jobId: string;

  beforeEach(async () => {
    store = await openSqliteStore(':memory:');
    const log = pino({ level: 'silent' });
    blobs = new BlobStore(await mkdtemp(join(tmpdir(), 'deqo-terminal-blobs-')), 1 << 24);
    const engine = new Engine(store, { blobs, config: { ...DEFAULT_ENGINE_CONFIG }, log });
    app = buildServer({ store, engine, blobs, log });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const buyer = await engine.accounts.createAccount('buyer', ['buyer']);
    await store.transaction((tx) => tx.ledger.post(grantTxn(buyer.accountId, toMicro(100), 'credits'), Date.now()));
    const agentIds = await registerAgents(engine, 1);
    jobId = await submitJob(engine, buyer.accountId, { verification: { mode: 'none' } });
    await engine.schedule();
    const [claimed] = await claimAll(engine, agentIds);
    const { agentId, a } = claimed!;
    const report = await completedReport(engine, a, HOSTILE);
    await blobs.put(Readable.from([Buffer.from(HOSTILE)]), report.stdoutBlob);
    await engine.report(agentId, a.executionId, report);
    env = readEnv({
      DEQO_HOME: blobs.dir,
      DEQO_COORDINATOR: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`,
      DEQO_API_KEY: buyer.apiKey,
    });
  });
  afterEach(async () => {
    // The in-process CLI's keep-alive connection would hold close() for Node's keep-alive timeout (72 s).
    app.server.closeAllConnections();
    await app.close();
    await store.close();
    await rm(blobs.dir, { recursive: true, force: true });
    process.exitCode = undefined;
  });

  /** Runs `deqo logs <args>` in this process; returns what it wrote to stdout, as bytes. */
  async function logs(...args: string[]): Promise<Buffer> {
    const chunks: Buffer[] = [];
    const write = vi.spyOn(process.stdout, 'write').mockImplementation((c: string | Uint8Array) => {
      chunks.push(Buffer.from(c));
      return true;
    });
    try {
      await logsCommand({ env }).parseAsync([jobId, ...args], { from: 'user' });
    } finally {
      write.mockRestore();
    }
    expect(process.exitCode).toBe(0);
    return Buffer.concat(chunks);
  }

  it("prints a job's output terminal-safe by default", async () => {
    expect((await logs()).toString()).toBe(SAFE);
  });

  it('prints the bytes unchanged with --raw', async () => {
    expect(await logs('--raw')).toEqual(Buffer.from(HOSTILE));
  });

  it('prints escaped JSON holding the text unchanged with --json', async () => {
    const printed = (await logs('--json')).toString();
    expect(printed).not.toMatch(CONTROL_BUT_LF);
    expect(JSON.parse(printed)).toMatchObject([{ taskIndex: 0, text: HOSTILE }]);
  });
});
