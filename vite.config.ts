/**
 * Vite build of the dashboard (web/ → dist/web), served by the coordinator (src/coordinator/web.ts).
 * Everything is bundled: the app needs no CDN and no internet. `html.cspNonce` puts a placeholder nonce on the
 * page's tags and in `<meta property="csp-nonce">`; the coordinator replaces it with a fresh nonce per response and
 * names it in the Content-Security-Policy (src/coordinator/security-headers.ts), so CodeMirror's <style> elements
 * (web/src/components/CodeEditor.tsx) are allowed without 'unsafe-inline'.
 */
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

export default defineConfig({
  root: 'web',
  base: '/',
  plugins: [react()],
  html: { cspNonce: 'DEQO_CSP_NONCE' },
  build: {
    outDir: '../dist/web', emptyOutDir: true, chunkSizeWarningLimit: 2000,
    rollupOptions: {
      // zod's sources carry /*@__PURE__*/ comments Rollup cannot place; harmless, and not ours to fix.
      onwarn(w, warn) { if (w.code !== 'INVALID_ANNOTATION') warn(w); },
    },
  },
});
