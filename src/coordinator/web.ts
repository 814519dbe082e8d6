/**
 * The dashboard's static files (the Vite build in dist/web), served by the coordinator itself: no CDN, no second
 * server. Static files need no API key (the app asks for one and sends it on every /v1 call). Any GET for a
 * non-/v1 path that is not a file answers index.html (single-page app fallback). When the build is missing,
 * `/` answers a plain 404 saying how to build it.
 */
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { extname, join, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { dashboardCsp, newCspNonce } from './security-headers.js';

/** What the Vite build puts where the page's CSP nonce goes (vite.config.ts `html.cspNonce`). */
export const NONCE_PLACEHOLDER = 'DEQO_CSP_NONCE';

/** Where `npm run build` writes the dashboard (dist/web next to dist/coordinator). */
export const DEFAULT_WEB_ROOT = fileURLToPath(new URL('../../dist/web/', import.meta.url));

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.map': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
};

/** Whether a request path belongs to the dashboard (everything but the API and the metrics). */
export function isWebPath(method: string, path: string): boolean {
  return (method === 'GET' || method === 'HEAD') && !path.startsWith('/v1/') && path !== '/v1' && path !== '/metrics';
}

async function isFile(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isFile();
  } catch {
    return false;
  }
}

/**
 * Answers a dashboard path from `root`: the file itself when it exists under root (never outside it), else
 * index.html for a route-like path (no extension), else 404. Hashed assets (assets/) are cached for a year. The
 * page gets a fresh nonce in place of NONCE_PLACEHOLDER and the dashboard's Content-Security-Policy naming it;
 * every response already has the other security headers (security-headers.ts, set by the server for all requests).
 */
export async function serveWeb(root: string, req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  let path: string;
  try {
    path = decodeURIComponent(req.url.split('?')[0]!);
  } catch {
    path = '\0';
  }
  if (path.includes('\0')) return reply.status(400).type('text/plain; charset=utf-8').send('bad path\n');
  const index = join(root, 'index.html');
  if (!(await isFile(index))) {
    return reply
      .status(404)
      .type('text/plain; charset=utf-8')
      .send('The dashboard is not built: run `npm run build` (it builds the web app into dist/web), then reload.\n');
  }
  const file = normalize(join(root, path));
  const inside = file.startsWith(root.endsWith(sep) ? root : root + sep);
  let target: string | null = null;
  if (inside && path !== '/' && (await isFile(file))) target = file;
  else if (path === '/' || extname(path) === '') target = index;
  if (!target) return reply.status(404).type('text/plain; charset=utf-8').send(`not found: ${path}\n`);
  if (target === index) {
    const nonce = newCspNonce();
    return reply
      .status(200)
      .type(TYPES['.html']!)
      .header('cache-control', 'no-cache')
      .header('content-security-policy', dashboardCsp(nonce))
      .send((await readFile(index, 'utf8')).replaceAll(NONCE_PLACEHOLDER, nonce));
  }
  const immutable = target.includes(`${sep}assets${sep}`);
  return reply
    .status(200)
    .type(TYPES[extname(target)] ?? 'application/octet-stream')
    .header('cache-control', immutable ? 'public, max-age=31536000, immutable' : 'no-cache')
    .send(createReadStream(target));
}
