/**
 * Vite build of the dashboard (web/ → dist/web), served by the coordinator (src/coordinator/web.ts).
 * Everything is bundled: the app needs no CDN and no internet.
 */
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

export default defineConfig({
  root: 'web',
  base: '/',
  plugins: [react()],
  build: {
    outDir: '../dist/web', emptyOutDir: true, chunkSizeWarningLimit: 2000,
    rollupOptions: {
      // zod's sources carry /*@__PURE__*/ comments Rollup cannot place; harmless, and not ours to fix.
      onwarn(w, warn) { if (w.code !== 'INVALID_ANNOTATION') warn(w); },
    },
  },
});
