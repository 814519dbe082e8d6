/**
 * Browser security headers. Every response (API, errors, metrics, the event stream, static files) says: do not guess
 * the content type (`nosniff`), send no Referer onwards, never show this in a frame, and — for anything but the
 * dashboard page — load nothing (`default-src 'none'`), so a JSON body or blob opened in a tab cannot run as a page.
 * The dashboard page gets a policy fit for its Vite build (web/, vite.config.ts): its own bundled scripts and
 * styles only (no inline script, no eval, no CDN) plus elements carrying the page's nonce (CodeMirror's <style>),
 * inline style attributes, API calls and the event stream to this origin (`connect-src 'self'`, fetch-based SSE), and `data:` images for
 * CodeMirror's inline SVG icons.
 */
import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';

/** A fresh CSP nonce: 128 random bits, base64. */
export function newCspNonce(): string {
  return randomBytes(16).toString('base64');
}

/** The dashboard page's Content-Security-Policy for a page served with `nonce` (newCspNonce). */
export function dashboardCsp(nonce: string): string {
  return [
    "default-src 'none'",
    `script-src 'self' 'nonce-${nonce}'`,
    `style-src 'self' 'nonce-${nonce}'`,
    // Style attributes: the browser's own editing writes them into CodeMirror's contenteditable (it redraws them
    // away); they cannot run script, and what they could load is held to img-src and font-src.
    "style-src-attr 'unsafe-inline'",
    "connect-src 'self'",
    "img-src 'self' data:",
    "font-src 'self'",
    "manifest-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

/** The Content-Security-Policy of every other response: nothing may load, nothing may frame it. */
export const API_CSP = "default-src 'none'; frame-ancestors 'none'";

/** Headers every response carries, CSP included (the dashboard page replaces it with dashboardCsp). */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': API_CSP,
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
};

/**
 * Sets SECURITY_HEADERS on a raw response before any route runs, so they also reach responses written by hand
 * (the hijacked event stream, whose writeHead merges them) and errors. Headers a route sets later win.
 */
export function setSecurityHeaders(res: ServerResponse): void {
  for (const [name, value] of Object.entries(SECURITY_HEADERS)) res.setHeader(name, value);
}
