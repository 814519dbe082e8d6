/**
 * CLI settings: the config file (named profiles of coordinator URL + API key) and the environment, read once
 * at start into a frozen object. Config file: `$DEQO_HOME/config.json` (default `~/.deqo/config.json`).
 */
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import { DeqoClient } from '../client/index.js';
import { CliError, EXIT } from './exit-codes.js';

const ProfileSchema = z.object({
  coordinator: z.string().url(),
  apiKey: z.string().min(1),
  /** Every coordinator of the profile's network, for `deqo agent` to fail over between (default: `coordinator`). */
  coordinators: z.array(z.string().url()).min(1).optional(),
});
export const CliConfigSchema = z.object({
  current: z.string().default('default'),
  profiles: z.record(z.string(), ProfileSchema).default({}),
});
export type CliConfig = z.infer<typeof CliConfigSchema>;
export type Profile = z.infer<typeof ProfileSchema>;

/** Settings from the environment, read once. */
export interface Env {
  home: string;
  configPath: string;
  coordinator: string | undefined;
  apiKey: string | undefined;
  profile: string | undefined;
  /** DEQO_DATABASE_URL: postgres://… selects PostgreSQL for a coordinator (default SQLite). */
  databaseUrl: string | undefined;
}

/** Reads DEQO_HOME, DEQO_COORDINATOR, DEQO_API_KEY, DEQO_PROFILE, DEQO_DATABASE_URL. */
export function readEnv(env: NodeJS.ProcessEnv = process.env): Readonly<Env> {
  const home = env.DEQO_HOME || join(homedir(), '.deqo');
  const set = (v: string | undefined) => (v === undefined || v === '' ? undefined : v);
  return Object.freeze({
    home,
    configPath: join(home, 'config.json'),
    coordinator: set(env.DEQO_COORDINATOR),
    apiKey: set(env.DEQO_API_KEY),
    profile: set(env.DEQO_PROFILE),
    databaseUrl: set(env.DEQO_DATABASE_URL),
  });
}

/** Loads the config file (empty when absent). Throws CliError naming the bad field. */
export async function loadConfig(path: string): Promise<CliConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    return CliConfigSchema.parse({});
  }
  const r = CliConfigSchema.safeParse(JSON.parse(text));
  if (!r.success)
    throw new CliError(
      `${path}: ${r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
      EXIT.USAGE,
    );
  return r.data;
}

/** Saves a profile (mode 0600: it holds a key) and makes it current. */
export async function saveProfile(path: string, name: string, profile: Profile): Promise<void> {
  const cfg = await loadConfig(path);
  cfg.profiles[name] = profile;
  cfg.current = name;
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, JSON.stringify(cfg, null, 2) + '\n', { mode: 0o600 });
  await chmod(path, 0o600);
}

/** Global flags every command accepts. */
export interface GlobalOptions {
  coordinator?: string;
  apiKey?: string;
  profile?: string;
}

/**
 * Coordinator URLs from one setting: comma-separated, blanks dropped, trailing slashes removed. Throws CliError
 * (USAGE) naming `source` for a value that is not an http(s) URL.
 */
export function coordinatorList(value: string, source: string): string[] {
  const urls = value
    .split(',')
    .map((u) => u.trim().replace(/\/+$/, ''))
    .filter((u) => u !== '');
  for (const u of urls) {
    let ok = false;
    try {
      ok = ['http:', 'https:'].includes(new URL(u).protocol);
    } catch {
      ok = false;
    }
    if (!ok) throw new CliError(`${source}: ${JSON.stringify(u)} is not an http(s) URL`, EXIT.USAGE);
  }
  if (urls.length === 0) throw new CliError(`${source}: no coordinator URL`, EXIT.USAGE);
  return urls;
}

/**
 * Clients for every coordinator chosen by `coordinators` (URLs a command parsed itself, e.g. `deqo agent`'s
 * repeatable flag), else the `--coordinator` flag, else DEQO_COORDINATOR, else the config profile (`coordinators`,
 * else `coordinator`), else http://127.0.0.1:8470. Flag and environment values may list several, comma-separated.
 * Throws CliError (AUTH) when no key is known, (USAGE) for a value that is not a URL.
 */
export async function clientsFor(env: Env, opts: GlobalOptions, coordinators?: string[]): Promise<DeqoClient[]> {
  const cfg = await loadConfig(env.configPath);
  const name = opts.profile ?? env.profile ?? cfg.current;
  const profile = cfg.profiles[name];
  const urls =
    coordinators && coordinators.length > 0
      ? coordinators
      : opts.coordinator
        ? coordinatorList(opts.coordinator, '--coordinator')
        : env.coordinator
          ? coordinatorList(env.coordinator, 'DEQO_COORDINATOR')
          : profile
            ? coordinatorList((profile.coordinators ?? [profile.coordinator]).join(','), `profile "${name}"`)
            : ['http://127.0.0.1:8470'];
  const apiKey = opts.apiKey ?? env.apiKey ?? profile?.apiKey;
  if (!apiKey) {
    throw new CliError(
      `no API key: run \`deqo up\` (it saves a buyer key in ${env.configPath}) or pass --api-key / DEQO_API_KEY`,
      EXIT.AUTH,
    );
  }
  return urls.map((u) => new DeqoClient(u, apiKey));
}

/**
 * A client for the coordinator chosen by flags, then environment, then the config profile (the first one when a
 * setting lists several). Throws CliError (AUTH) when no key is known, (USAGE) for a value that is not a URL.
 */
export async function clientFor(env: Env, opts: GlobalOptions): Promise<DeqoClient> {
  return (await clientsFor(env, opts))[0]!;
}
