/**
 * The canonical form of a result manifest, which the result hash is the SHA-256 of. Agents and the
 * coordinator both build it from the same manifest, so they agree byte for byte:
 *
 *   deqo-result-v1\n
 *   exit <code>\n
 *   stdout <sha256>\n
 *   file <sha256> <size> <JSON-encoded path>\n      (one per output file, sorted by path, code-unit order)
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, utf8ToBytes } from '@noble/hashes/utils.js';
import type { Manifest } from '../protocol/index.js';

/** Canonical text of a manifest (UTF-8 when hashed). Throws RangeError on duplicate file paths. */
export function canonicalManifest(m: Manifest): string {
  const files = [...m.files].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  for (let i = 1; i < files.length; i++) {
    if (files[i]!.path === files[i - 1]!.path) throw new RangeError(`duplicate output path ${files[i]!.path}`);
  }
  const lines = [
    'deqo-result-v1',
    `exit ${m.exitCode}`,
    `stdout ${m.stdoutSha256}`,
    ...files.map((f) => `file ${f.sha256} ${f.size} ${JSON.stringify(f.path)}`),
  ];
  return lines.join('\n') + '\n';
}

/**
 * The result hash: SHA-256 (hex) of the canonical manifest as UTF-8. Agents compute it, the coordinator
 * recomputes it from the reported manifest. SHA-256 from @noble/hashes (pure JS, so core stays free of node:*).
 * Throws RangeError on duplicate file paths (canonicalManifest).
 */
export function resultHashOf(m: Manifest): string {
  return bytesToHex(sha256(utf8ToBytes(canonicalManifest(m))));
}
