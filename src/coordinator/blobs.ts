/**
 * Content-addressed blob store on the local disk: `<dir>/<aa>/<sha256>`. Uploads stream to a temporary file
 * while hashing and counting; a blob over the size limit is refused and nothing is kept. It is also the engine's
 * BlobReader (the engine reads reported outputs tarballs through it to check them against their manifests).
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DeqoError } from '../core/index.js';
import type { BlobReader } from '../engine/index.js';

export class BlobStore implements BlobReader {
  /** @param dir folder for blobs; @param maxBytes largest blob accepted, bytes. */
  constructor(
    readonly dir: string,
    readonly maxBytes: number,
  ) {}

  private pathOf(sha256: string): string {
    return join(this.dir, sha256.slice(0, 2), sha256);
  }

  /**
   * Streams `body` into the store. Throws DeqoError payload_too_large past `maxBytes`, digest_mismatch when
   * `expectedSha256` is given and differs, and `quota.exceeded(size)` once more than `quota.room` bytes came.
   * Returns the blob's SHA-256 (hex) and size in bytes.
   */
  async put(
    body: Readable,
    expectedSha256?: string,
    quota?: { room: number; exceeded: (size: number) => Error },
  ): Promise<{ sha256: string; size: number }> {
    await mkdir(join(this.dir, 'tmp'), { recursive: true });
    const tmp = join(this.dir, 'tmp', randomBytes(8).toString('hex'));
    const hash = createHash('sha256');
    let size = 0;
    const max = this.maxBytes;
    const meter = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        size += chunk.length;
        if (size > max) {
          cb(new DeqoError('payload_too_large', `blob exceeds the limit of ${max} bytes`));
          return;
        }
        if (quota && size > quota.room) {
          cb(quota.exceeded(size));
          return;
        }
        hash.update(chunk);
        cb(null, chunk);
      },
    });
    try {
      await pipeline(body, meter, createWriteStream(tmp));
      const sha256 = hash.digest('hex');
      if (expectedSha256 && expectedSha256 !== sha256) {
        throw new DeqoError('digest_mismatch', `uploaded bytes hash to ${sha256}, not ${expectedSha256}`);
      }
      await mkdir(join(this.dir, sha256.slice(0, 2)), { recursive: true });
      await rename(tmp, this.pathOf(sha256));
      return { sha256, size };
    } finally {
      await rm(tmp, { force: true });
    }
  }

  /** Size in bytes of a stored blob, or null. */
  async size(sha256: string): Promise<number | null> {
    try {
      return (await stat(this.pathOf(sha256))).size;
    } catch {
      return null;
    }
  }

  /** Deletes a stored blob's bytes (nothing when there are none). */
  async remove(sha256: string): Promise<void> {
    await rm(this.pathOf(sha256), { force: true });
  }

  /** A read stream of a stored blob. Throws DeqoError not_found. */
  async open(sha256: string): Promise<{ stream: Readable; size: number }> {
    const size = await this.size(sha256);
    if (size === null) throw new DeqoError('not_found', `blob ${sha256} does not exist`);
    return { stream: createReadStream(this.pathOf(sha256)), size };
  }
}
