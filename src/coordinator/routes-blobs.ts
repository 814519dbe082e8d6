/**
 * Blob routes: streamed upload (application/octet-stream) and download, content-addressed by SHA-256. Uploads are
 * admitted by the engine (a provider key only while it runs an execution; the account's byte quota).
 */
import type { FastifyPluginAsync } from 'fastify';
import type { Readable } from 'node:stream';
import { type BlobInfo, Sha256Schema } from '../protocol/index.js';
import { DeqoError, errors } from '../core/index.js';
import { parseOr400, type ServerDeps } from './http.js';

export function blobRoutes({ store, engine, blobs }: ServerDeps): FastifyPluginAsync {
  return async (app) => {
    // Leave the body as a stream: the route consumes it.
    app.addContentTypeParser('application/octet-stream', (_req, _payload, done) => done(null));

    app.post('/v1/blobs', async (req, reply): Promise<BlobInfo> => {
      // Any other type would have been parsed (consumed) by Fastify already: refuse it rather than store nothing.
      if (!/^application\/octet-stream\b/i.test(req.headers['content-type'] ?? '')) {
        throw new DeqoError('unsupported_media_type', 'send blob bytes as Content-Type: application/octet-stream');
      }
      const expected = req.headers['x-deqo-sha256'];
      const sha =
        typeof expected === 'string'
          ? parseOr400(Sha256Schema, expected, 'header x-deqo-sha256', 'x-deqo-sha256')
          : undefined;
      const length = req.headers['content-length'];
      const declared = length === undefined ? undefined : Number(length);
      // Who may upload, and how many bytes fit in the account's quota (checked again as the bytes arrive).
      const allowance = await engine.blobSystem.admitUpload(req.principal, declared);
      const info = await blobs.put(req.raw as Readable, sha, allowance);
      await engine.blobSystem.uploaded(req.principal.accountId, info.sha256, info.size);
      reply.status(201);
      return info;
    });

    app.get('/v1/blobs/:sha256', async (req, reply) => {
      const sha = parseOr400(
        Sha256Schema,
        (req.params as { sha256: unknown }).sha256,
        'path parameter sha256',
        'sha256',
      );
      // Tenancy: only accounts that uploaded the blob, own a job using or producing it, or run such a job may read it.
      if (req.principal.scope !== 'admin' && !(await store.accounts.canReadBlob(sha, req.principal.accountId)))
        throw errors.notFound('blob', sha);
      const { stream, size } = await blobs.open(sha);
      reply
        .header('content-type', 'application/octet-stream')
        .header('content-length', String(size))
        .header('x-deqo-sha256', sha);
      return reply.send(stream);
    });
  };
}
