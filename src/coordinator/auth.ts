/** The request's caller: its API key resolved to a principal, scope checks, and an agent's proof of identity. */
import { createPublicKey, verify } from 'node:crypto';
import { DeqoError } from '../core/index.js';
import { hashApiKey } from '../engine/index.js';
import type { Principal, Role, Store } from '../store/index.js';

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
