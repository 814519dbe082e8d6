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

/** One entry of an outputs tarball as its header describes it: path, tar type (`File`, `SymbolicLink` …), size in bytes. */
export interface OutputsEntry {
  path: string;
  type: string;
  size: number;
}

/** The first thing wrong with an outputs tarball: the path it concerns (`(tarball)` for the archive itself) and what. */
export interface OutputsMismatch {
  path: string;
  problem: string;
}

/** Tar entry types that are regular files (node-tar's names for types `0`, NUL and `7`). */
const REGULAR_FILE_TYPES: ReadonlySet<string> = new Set(['File', 'OldFile', 'ContiguousFile']);

/**
 * Bytes a tar archive may spend beyond its files' contents, per file and in all: a header block, a pax extended
 * header for a long or non-ASCII path (header block + up to 15 blocks), and the end-of-archive blocks with padding to
 * a 10 KiB record.
 */
const TAR_OVERHEAD_PER_FILE = 17 * 512;
const TAR_OVERHEAD = 20 * 512;

/**
 * Which entries of an outputs tarball are acceptable for a manifest, fed entry by entry as a tar parser reads them:
 * the tarball holds exactly the manifest's files — regular files only (no directory, symlink, hard-link or special
 * entry), each path once, no absolute path and no `..` segment, no extra and no missing file — and each file has the
 * manifest's size and SHA-256. Every entry must be a distinct manifest path, so a check reads at most
 * `manifest.files.length` entries (≤ 100,000, ManifestSchema) and at most `byteBound` bytes of tar.
 */
export class OutputsCheck {
  private readonly expected: ReadonlyMap<string, { sha256: string; size: number }>;
  private readonly seen = new Set<string>();
  /** The most bytes (uncompressed tar) an archive of exactly these files can take. */
  readonly byteBound: number;

  /** Throws RangeError on duplicate manifest paths (a manifest that has no canonical form). */
  constructor(manifest: Manifest) {
    this.expected = new Map(manifest.files.map((f) => [f.path, { sha256: f.sha256, size: f.size }]));
    if (this.expected.size !== manifest.files.length) throw new RangeError('the manifest lists an output path twice');
    this.byteBound =
      manifest.files.reduce((n, f) => n + Math.ceil(f.size / 512) * 512 + TAR_OVERHEAD_PER_FILE, 0) + TAR_OVERHEAD;
  }

  /** What is wrong with the next entry's header, or null: then its content follows (check it with `content`). */
  entry(e: OutputsEntry): OutputsMismatch | null {
    const bad = (problem: string): OutputsMismatch => ({ path: e.path, problem });
    if (e.path.startsWith('/')) return bad('an absolute path (only paths inside the output directory are accepted)');
    if (e.path.split('/').includes('..'))
      return bad('a path with a ".." segment (it points outside the output directory)');
    if (e.type === 'SymbolicLink') return bad('a symbolic link (only regular files are accepted)');
    if (e.type === 'Link') return bad('a hard link (only regular files are accepted)');
    if (!REGULAR_FILE_TYPES.has(e.type)) return bad(`a ${e.type} entry (only regular files are accepted)`);
    const want = this.expected.get(e.path);
    if (!want) return bad('a file the manifest does not list');
    if (this.seen.has(e.path)) return bad('in the tarball twice');
    this.seen.add(e.path);
    if (e.size !== want.size) return bad(`${e.size} bytes in the tarball, ${want.size} in the manifest`);
    return null;
  }

  /** What is wrong with the content of an accepted entry (`size` bytes read, SHA-256 hex `sha256`), or null. */
  content(path: string, sha256: string, size: number): OutputsMismatch | null {
    const want = this.expected.get(path);
    if (!want) return { path, problem: 'a file the manifest does not list' };
    if (size !== want.size) return { path, problem: `${size} bytes in the tarball, ${want.size} in the manifest` };
    if (sha256 !== want.sha256)
      return { path, problem: `its content hashes to ${sha256}, the manifest says ${want.sha256}` };
    return null;
  }

  /** After the last entry: the first manifest file the tarball did not hold, or null. */
  end(): OutputsMismatch | null {
    for (const path of this.expected.keys())
      if (!this.seen.has(path)) return { path, problem: 'listed in the manifest but not in the tarball' };
    return null;
  }
}
