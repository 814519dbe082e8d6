/**
 * Node-only blob transfers over the client (client.ts stays browser-safe): upload a file or a Node stream,
 * download to a file, read a small blob into a Buffer. Progress callbacks get bytes done and the total.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import type { BlobInfo } from '../protocol/index.js';
import type { DeqoClient } from './client.js';

/** Progress callback for transfers: bytes done and total (null when unknown). */
export type Progress = (done: number, total: number | null) => void;

/** A pass-through stream that reports the bytes that went through it. */
function meter(onProgress: Progress | undefined, total: number | null): Transform {
  let done = 0;
  return new Transform({
    transform(chunk: Buffer, _e, cb) {
      done += chunk.length;
      onProgress?.(done, total);
      cb(null, chunk);
    },
  });
}

/** Read size of file uploads, bytes. */
const UPLOAD_CHUNK_BYTES = 1024 * 1024;

/** Uploads a file as a blob, streaming; `onProgress` gets bytes sent; `signal` aborts. Throws ApiError, or the file's error. */
export async function uploadFile(
  client: DeqoClient,
  path: string,
  onProgress?: Progress,
  signal?: AbortSignal,
): Promise<BlobInfo> {
  const size = (await stat(path)).size;
  // Read in 1 MiB chunks: fetch's web streams cost per chunk, and with the default 64 KiB a 1 GiB upload spent a
  // third more CPU (docs/benchmarks.md).
  return uploadStream(client, createReadStream(path, { highWaterMark: UPLOAD_CHUNK_BYTES }), size, onProgress, signal);
}

/** Uploads bytes from a Node stream as a blob (`size` in bytes, null when unknown); `signal` aborts. Throws ApiError. */
export async function uploadStream(
  client: DeqoClient,
  source: Readable,
  size: number | null,
  onProgress?: Progress,
  signal?: AbortSignal,
): Promise<BlobInfo> {
  const m = meter(onProgress, size);
  source.on('error', (e) => m.destroy(e));
  return client.uploadBytes(Readable.toWeb(source.pipe(m)) as unknown as ReadableStream<Uint8Array>, signal);
}

/** Downloads a blob to a file, streaming; `onProgress` gets bytes received. Returns the size in bytes. Throws ApiError. */
export async function downloadBlob(
  client: DeqoClient,
  sha256: string,
  dest: string,
  onProgress?: Progress,
): Promise<number> {
  const res = await client.openBlob(sha256);
  const total = Number(res.headers.get('content-length') ?? NaN);
  let done = 0;
  const m = meter(
    (d, t) => {
      done = d;
      onProgress?.(d, t);
    },
    Number.isFinite(total) ? total : null,
  );
  await pipeline(Readable.fromWeb(res.body as unknown as WebReadableStream), m, createWriteStream(dest));
  return done;
}

/** A small blob (logs) in memory. Throws ApiError. */
export async function fetchBlob(client: DeqoClient, sha256: string): Promise<Buffer> {
  return Buffer.from(await client.blobBytes(sha256));
}

/** SHA-256 (hex) of a local file, streamed. Throws the file's error. */
export async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  await pipeline(createReadStream(path), h);
  return h.digest('hex');
}
