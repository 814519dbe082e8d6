/**
 * The agent's offer (config file + flags), its availability windows (croner, time zones, `until`), the
 * combination with the idle policy, and the owner-load samplers.
 */
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  AvailabilityMonitor,
  combineAvailability,
  InvalidWindowError,
  WindowSchedule,
} from '../../src/agent/availability.js';
import {
  buildAgentSettings,
  describeOffer,
  OfferConfigError,
  parseSizeMb,
  readAgentConfigFile,
} from '../../src/agent/offer.js';
import { CpuLoadSampler, FileLoadSampler, parseProcStat, type LoadSampler } from '../../src/agent/owner-load.js';
import { OfferSchema } from '../../src/protocol/index.js';

const at = (iso: string) => Date.parse(iso);
const WEEKNIGHTS = '* 22-23,0-6 * * 1-5';
const WEEKENDS = '* * * * 6,0';

async function tmpFile(name: string, text: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'deqo-offer-'));
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}

function errorOf(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected an error');
}

describe('agent offer: config file overlaid by flags', () => {
  const yaml = `
name: lab-pc
cpus: 3
memory: 8g
disk: 20g
prices: { cpuHour: 0.04, memoryGiBHour: 0.004, startFee: 0.002 }
labels: { zone: eu-west, gpu: a100 }
windows: ['${WEEKNIGHTS}']
timezone: Europe/Paris
idlePolicy: { enabled: true, startBelow: 0.2 }
`;

  it('reads YAML and lets flags win field by field', async () => {
    const path = await tmpFile('agent.yaml', yaml);
    const s = buildAgentSettings(
      { path, raw: await readAgentConfigFile(path) },
      { priceCpuHour: 0.07, labels: { gpu: 'none', os: 'debian' }, cpus: 2, idleSuspendAfterSeconds: 60 },
    );
    expect(s.name).toBe('lab-pc');
    expect(s.cpus).toBe(2);
    expect(s.memoryMb).toBe(8192);
    expect(s.allowNetwork).toBe(false);
    expect(s.offer.prices).toEqual({ cpuHour: 0.07, memoryGiBHour: 0.004, gpuHour: 0.5, startFee: 0.002 });
    expect(s.offer.diskMb).toBe(20 * 1024);
    expect(s.offer.labels).toEqual({ zone: 'eu-west', gpu: 'none', os: 'debian' });
    expect(s.offer.windows).toEqual([WEEKNIGHTS]);
    expect(s.offer.timezone).toBe('Europe/Paris');
    expect(s.offer.idlePolicy).toEqual({
      enabled: true,
      startBelow: 0.2,
      suspendAbove: 0.5,
      suspendAfterSeconds: 60,
      resumeAfterSeconds: 300,
    });
  });

  it("replaces the file's windows with --window, and --no-idle-policy turns a file's policy off", async () => {
    const path = await tmpFile('agent.yaml', yaml);
    const s = buildAgentSettings(
      { path, raw: await readAgentConfigFile(path) },
      { windows: [WEEKENDS], idlePolicy: false, timezone: 'UTC' },
    );
    expect(s.offer.windows).toEqual([WEEKENDS]);
    expect(s.offer.timezone).toBe('UTC');
    expect(s.offer.idlePolicy.enabled).toBe(false);
    expect(s.offer.idlePolicy.startBelow).toBe(0.2);
  });

  it('reads JSON too, and without a file gives the protocol defaults', async () => {
    const path = await tmpFile('agent.json', JSON.stringify({ diskMb: 512, allowNetwork: true }));
    const s = buildAgentSettings({ path, raw: await readAgentConfigFile(path) }, {});
    expect(s.offer.diskMb).toBe(512);
    expect(s.allowNetwork).toBe(true);
    expect(buildAgentSettings(undefined, {}).offer).toEqual(OfferSchema.parse({}));
  });

  it('names the field and the flag of a bad value', () => {
    const e = errorOf(() => buildAgentSettings(undefined, { priceGpuHour: -1, idleStartBelow: 0.9 }));
    expect(e).toBeInstanceOf(OfferConfigError);
    expect(e.message).toContain('prices.gpuHour (--price-gpu-hour)');
    expect(e.message).toContain('idlePolicy.startBelow (--idle-start-below)');
    expect(e.message).not.toContain('cpuHour');
  });

  it('names the file and the field for bad file values and unknown fields', () => {
    const bad = errorOf(() => buildAgentSettings({ path: 'agent.yaml', raw: { prices: { cpuHour: 'cheap' } } }, {}));
    expect(bad.message).toMatch(/agent\.yaml/);
    expect(bad.message).toContain('prices.cpuHour');
    const unknown = errorOf(() => buildAgentSettings({ path: 'agent.yaml', raw: { pricez: {} } }, {}));
    expect(unknown.message).toMatch(/agent\.yaml: .*pricez/);
    const mem = errorOf(() => buildAgentSettings({ path: 'agent.yaml', raw: { memory: 'lots' } }, {}));
    expect(mem.message).toContain('agent.yaml: memory');
  });

  it('refuses a bad cron expression at start, naming it and where it came from', () => {
    const flag = errorOf(() => buildAgentSettings(undefined, { windows: [WEEKENDS, '* 25 * * *'] }));
    expect(flag).toBeInstanceOf(OfferConfigError);
    expect(flag.message).toContain('--window');
    expect(flag.message).toContain("'* 25 * * *'");
    const file = errorOf(() => buildAgentSettings({ path: 'agent.yaml', raw: { windows: ['61 * * * *'] } }, {}));
    expect(file.message).toContain('agent.yaml: windows');
    expect(file.message).toContain("'61 * * * *'");
    const tz = errorOf(() => buildAgentSettings(undefined, { timezone: 'Mars/Olympus' }));
    expect(tz.message).toContain('--timezone');
    expect(tz.message).toContain('Mars/Olympus');
  });

  it('parses sizes and describes the offer for a person', () => {
    expect(parseSizeMb('2g')).toBe(2048);
    expect(parseSizeMb('512m')).toBe(512);
    expect(parseSizeMb(300)).toBe(300);
    expect(parseSizeMb('a lot')).toBeNull();
    const offer = buildAgentSettings(undefined, {
      labels: { zone: 'eu' },
      windows: [WEEKENDS],
      idlePolicy: true,
      priceCpuHour: 0.07,
    }).offer;
    const text = describeOffer('lab-pc', { cpus: 2, memoryMb: 4096, gpus: [], allowNetwork: false }, offer);
    expect(text).toContain('0.07 cr per CPU-hour');
    expect(text).toContain('zone=eu');
    expect(text).toContain(`'${WEEKENDS}'`);
    expect(text).toContain('start below 30%');
    expect(describeOffer('x', { cpus: 1, memoryMb: 1, gpus: [], allowNetwork: true }, OfferSchema.parse({}))).toMatch(
      /windows +always[\s\S]*idle +off/,
    );
  });
});

describe('availability windows', () => {
  // 2025-01-07 is a Tuesday.
  it('a weeknights window: inside at Tue 23:30, outside at Tue 12:00, with when that changes', () => {
    const w = new WindowSchedule([WEEKNIGHTS], 'UTC');
    expect(w.status(at('2025-01-07T23:30:00Z'))).toEqual({ inside: true, until: at('2025-01-08T07:00:00Z') });
    expect(new WindowSchedule([WEEKNIGHTS], 'UTC').status(at('2025-01-07T12:00:00Z'))).toEqual({
      inside: false,
      until: at('2025-01-07T22:00:00Z'),
    });
    // Friday night ends at midnight: Saturday is not in 1-5.
    expect(new WindowSchedule([WEEKNIGHTS], 'UTC').status(at('2025-01-10T23:30:00Z'))).toEqual({
      inside: true,
      until: at('2025-01-11T00:00:00Z'),
    });
  });

  it('a weekend window, and two windows together', () => {
    expect(new WindowSchedule([WEEKENDS], 'UTC').status(at('2025-01-11T10:00:00Z'))).toEqual({
      inside: true,
      until: at('2025-01-13T00:00:00Z'),
    });
    expect(new WindowSchedule([WEEKENDS], 'UTC').status(at('2025-01-08T10:00:00Z'))).toEqual({
      inside: false,
      until: at('2025-01-11T00:00:00Z'),
    });
    // Friday 23:30: the weeknight window hands over to the weekend, so the machine stays available until Monday 07:00.
    expect(new WindowSchedule([WEEKNIGHTS, WEEKENDS], 'UTC').status(at('2025-01-10T23:30:00Z'))).toEqual({
      inside: true,
      until: at('2025-01-13T07:00:00Z'),
    });
  });

  it("evaluates in the offer's time zone", () => {
    const instant = at('2025-01-08T03:30:00Z'); // Tue 22:30 in New York, Wed 12:30 in Tokyo
    expect(new WindowSchedule([WEEKNIGHTS], 'America/New_York').status(instant)).toEqual({
      inside: true,
      until: at('2025-01-08T12:00:00Z'),
    });
    expect(new WindowSchedule([WEEKNIGHTS], 'Asia/Tokyo').status(instant)).toEqual({
      inside: false,
      until: at('2025-01-08T13:00:00Z'),
    });
  });

  it('uses the minute: 6-field expressions count when they fire within it; empty means always', () => {
    expect(new WindowSchedule(['0 * 9 * * *'], 'UTC').status(at('2025-01-07T09:30:15Z'))).toEqual({
      inside: true,
      until: at('2025-01-07T10:00:00Z'),
    });
    expect(new WindowSchedule(['30 * 9 * * *'], 'UTC').status(at('2025-01-07T09:59:59Z')).inside).toBe(true);
    expect(new WindowSchedule([], 'UTC').status(at('2025-01-07T12:00:00Z'))).toEqual({ inside: true });
    expect(new WindowSchedule(['* * * * *']).status(Date.now())).toEqual({ inside: true });
  });

  it('keeps answering correctly across a change (the cached answer expires at `until`)', () => {
    const w = new WindowSchedule(['* 22-23 * * *'], 'UTC');
    expect(w.status(at('2025-01-07T21:59:00Z')).inside).toBe(false);
    expect(w.status(at('2025-01-07T22:00:00Z'))).toEqual({ inside: true, until: at('2025-01-08T00:00:00Z') });
    expect(w.status(at('2025-01-08T00:00:30Z'))).toEqual({ inside: false, until: at('2025-01-08T22:00:00Z') });
  });

  it('throws InvalidWindowError for a bad expression or zone', () => {
    expect(() => new WindowSchedule(['* * * 13 *'])).toThrow(InvalidWindowError);
    expect(() => new WindowSchedule([WEEKENDS], 'Nowhere/City')).toThrow(/unknown time zone/);
  });
});

describe('availability: windows + idle policy + draining', () => {
  const inside = { inside: true, until: at('2025-01-08T07:00:00Z') };
  const outside = { inside: false, until: at('2025-01-07T22:00:00Z') };
  const free = { canStart: true, reason: null };
  const busy = { canStart: false, reason: 'owner load 80% is above 30%' };

  it('draining > outside_window > owner_busy > available', () => {
    expect(combineAvailability({ draining: true, window: outside, idle: busy }).state).toBe('draining');
    expect(combineAvailability({ draining: false, window: outside, idle: busy }, 'UTC')).toEqual({
      state: 'outside_window',
      message: expect.stringContaining('2025-01-07 22:00 UTC'),
      until: outside.until,
    });
    expect(combineAvailability({ draining: false, window: inside, idle: busy })).toEqual({
      state: 'owner_busy',
      message: busy.reason,
    });
    expect(combineAvailability({ draining: false, window: inside, idle: free }, 'UTC')).toEqual({
      state: 'available',
      message: expect.stringContaining('2025-01-08 07:00 UTC'),
      until: inside.until,
    });
    expect(combineAvailability({ draining: false, window: { inside: true }, idle: free })).toEqual({
      state: 'available',
    });
  });

  /** The machine's owner, scripted: each sample returns the next load. */
  class Owner implements LoadSampler {
    samples = 0;
    constructor(private readonly loads: number[]) {}
    async sample(): Promise<number> {
      return this.loads[Math.min(this.samples++, this.loads.length - 1)]!;
    }
  }

  it('steps the idle policy: busy owner holds work back, then winds down, then lets work in again', async () => {
    const offer = OfferSchema.parse({
      idlePolicy: { enabled: true, suspendAfterSeconds: 120, resumeAfterSeconds: 300 },
    });
    const owner = new Owner([0.1, 0.9, 0.9, 0.9, 0.1, 0.1]);
    const m = new AvailabilityMonitor(offer, owner);
    const t0 = at('2025-01-07T12:00:00Z');
    expect(await m.evaluate(t0, false)).toMatchObject({
      availability: { state: 'available' },
      windDown: false,
      ownerLoad: 0.1,
    });
    expect(await m.evaluate(t0 + 10_000, false)).toMatchObject({
      availability: { state: 'owner_busy' },
      windDown: false,
    });
    expect(await m.evaluate(t0 + 100_000, false)).toMatchObject({
      availability: { state: 'owner_busy' },
      windDown: false,
    });
    expect(await m.evaluate(t0 + 131_000, false)).toMatchObject({
      availability: { state: 'owner_busy' },
      windDown: true,
    });
    expect(await m.evaluate(t0 + 140_000, false)).toMatchObject({
      availability: { state: 'owner_busy' },
      windDown: true,
    });
    expect(await m.evaluate(t0 + 441_000, false)).toMatchObject({
      availability: { state: 'available' },
      windDown: false,
    });
    expect(owner.samples).toBe(6);
  });

  it('does not sample the owner when the policy is off; windows still apply; draining never winds down', async () => {
    const owner = new Owner([1]);
    const m = new AvailabilityMonitor(OfferSchema.parse({ windows: [WEEKNIGHTS], timezone: 'UTC' }), owner);
    expect((await m.evaluate(at('2025-01-07T12:00:00Z'), false)).availability.state).toBe('outside_window');
    expect((await m.evaluate(at('2025-01-07T23:00:00Z'), false)).availability.state).toBe('available');
    expect(await m.evaluate(at('2025-01-07T23:00:00Z'), true)).toMatchObject({
      availability: { state: 'draining' },
      windDown: false,
    });
    expect(owner.samples).toBe(0);
  });
});

describe('owner load samplers', () => {
  it('parses the aggregate line of /proc/stat', () => {
    expect(parseProcStat('cpu  100 5 50 800 20 3 2 1 0 0\ncpu0 1 1 1 1 1 1 1 1 0 0\n')).toEqual({
      busy: 161,
      total: 981,
    });
    expect(parseProcStat('intr 1 2 3\n')).toBeNull();
  });

  it("is the host busy fraction between samples, minus this agent's jobs, clamped to [0, 1]", async () => {
    const stat = await tmpFile('stat', 'cpu  1000 0 0 1000 0 0 0 0 0 0\n');
    let jobMs = 0;
    const s = new CpuLoadSampler({ procStat: stat, cores: 2, firstIntervalMs: 1, jobCpuMs: () => jobMs });
    expect(await s.sample()).toBe(0); // nothing moved during the first interval
    await writeFile(stat, 'cpu  1050 10 0 1040 0 0 0 0 0 0\n'); // 60 busy of 100 ticks
    expect(await s.sample()).toBeCloseTo(0.6, 10);
    await writeFile(stat, 'cpu  1150 10 0 1040 0 0 0 0 0 0\n'); // fully busy, but the jobs used more than that
    jobMs += 1e9;
    expect(await s.sample()).toBe(0);
  });

  it("reads this machine's /proc/stat as a fraction in [0, 1]", async () => {
    const s = new CpuLoadSampler();
    for (let i = 0; i < 2; i++) {
      const load = await s.sample();
      expect(load).toBeGreaterThanOrEqual(0);
      expect(load).toBeLessThanOrEqual(1);
    }
  });

  it('TEST ONLY file sampler: the number in the file, the last one when unreadable', async () => {
    const path = await tmpFile('load', '0.75\n');
    const s = new FileLoadSampler(path);
    expect(await s.sample()).toBe(0.75);
    await writeFile(path, 'garbage');
    expect(await s.sample()).toBe(0.75);
    await writeFile(path, '7');
    expect(await s.sample()).toBe(1);
    expect(await new FileLoadSampler(join(path, 'missing')).sample()).toBe(0);
  });
});
