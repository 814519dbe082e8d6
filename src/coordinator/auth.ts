/** API keys: generation, hashing, and the request hook that resolves the caller. */
import { createHash, createPublicKey, randomBytes, verify } from 'node:crypto';
import { DeqoError } from '../core/index.js';
import type { Principal, Role, Store } from '../store/index.js';

/** A new API key: `deqo_` + 256 random bits, base64url. Shown once; only its hash is stored. */
export function generateApiKey(): string {
  return `deqo_${randomBytes(32).toString('base64url')}`;
}

/** SHA-256 (hex) of an API key, the form stored and looked up. */
export function hashApiKey(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

/** Adds a key of `scope` to an account; returns its id and the key itself (shown once, never stored). */
export async function createKeyFor(
  store: Store,
  accountId: string,
  scope: Role,
  now: number,
  label: string | null = null,
): Promise<{ keyId: string; apiKey: string }> {
  const apiKey = generateApiKey();
  const keyId = await store.accounts.addApiKey(accountId, hashApiKey(apiKey), scope, now, label);
  return { keyId, apiKey };
}

/** Creates an account with one key of the given scope; returns the account id and the key (shown once). */
export async function createAccountWithKey(
  store: Store,
  name: string,
  roles: Role[],
  scope: Role,
  now: number,
): Promise<{ accountId: string; apiKey: string }> {
  const accountId = await store.accounts.createAccount(name, roles, now);
  const { apiKey } = await createKeyFor(store, accountId, scope, now);
  return { accountId, apiKey };
}

/** Resolves the bearer key of a request. Throws DeqoError unauthorized when missing or unknown. */
export async function authenticate(store: Store, authorization: string | undefined): Promise<Principal> {
  const m = /^Bearer\s+(\S+)$/i.exec(authorization ?? '');
  if (!m) throw new DeqoError('unauthorized', 'missing API key: send "Authorization: Bearer <key>" (see `deqo login`)');
  const principal = await store.accounts.authenticate(hashApiKey(m[1]!));
  if (!principal) throw new DeqoError('unauthorized', 'unknown or revoked API key');
  return principal;
}

/** Throws DeqoError forbidden unless the principal's key has `scope`. */
export function requireScope(p: Principal, scope: Role): void {
  if (p.scope !== scope && p.scope !== 'admin') {
    throw new DeqoError('forbidden', `this API key is for ${p.scope}s; this call needs a ${scope} key`);
  }
}

const ED25519_SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
/** Largest clock difference accepted on a registration signature, ms. */
export const REGISTRATION_SKEW_MS = 5 * 60_000;

/**
 * Checks an agent's proof of its Ed25519 key: signature over `deqo-register\n{publicKey}\n{timestamp}`.
 * Returns the agent id (base64url of the raw public key). Throws DeqoError unauthorized.
 */
export function verifyAgentIdentity(publicKey: string, timestamp: number, signature: string, now: number): string {
  const raw = Buffer.from(publicKey, 'base64');
  if (raw.length !== 32)
    throw new DeqoError('validation_failed', 'publicKey must be 32 bytes', [
      { path: 'publicKey', message: 'expected 32 bytes' },
    ]);
  if (Math.abs(now - timestamp) > REGISTRATION_SKEW_MS) {
    throw new DeqoError(
      'unauthorized',
      'registration timestamp is more than 5 minutes off the coordinator clock; check the agent machine clock',
    );
  }
  const key = createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, raw]), format: 'der', type: 'spki' });
  const ok = verify(
    null,
    Buffer.from(`deqo-register\n${publicKey}\n${timestamp}`),
    key,
    Buffer.from(signature, 'base64'),
  );
  if (!ok) throw new DeqoError('unauthorized', 'registration signature does not match the public key');
  return raw.toString('base64url');
}
