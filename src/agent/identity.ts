/** The agent's persistent identity: an Ed25519 key pair in its data directory; the public key is its id. */
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface AgentIdentity {
  /** base64 of the raw 32-byte public key (as sent at registration). */
  publicKey: string;
  /** The agent id: base64url of the raw public key. */
  agentId: string;
  privateKey: KeyObject;
}

/** Loads `<dataDir>/identity.pem`, creating a new key pair (mode 0600) on first start. */
export async function loadOrCreateIdentity(dataDir: string): Promise<AgentIdentity> {
  const file = join(dataDir, 'identity.pem');
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(await readFile(file, 'utf8'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    await mkdir(dataDir, { recursive: true });
    privateKey = generateKeyPairSync('ed25519').privateKey;
    await writeFile(file, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600, flag: 'wx' });
  }
  const raw = createPublicKey(privateKey).export({ type: 'spki', format: 'der' }).subarray(-32);
  return { publicKey: raw.toString('base64'), agentId: raw.toString('base64url'), privateKey };
}

/** Signs the registration proof `deqo-register\n{publicKey}\n{timestamp}`; base64. */
export function signRegistration(id: AgentIdentity, timestamp: number): string {
  return sign(null, Buffer.from(`deqo-register\n${id.publicKey}\n${timestamp}`), id.privateKey).toString('base64');
}
