/**
 * Vite build of the dashboard (web/ → dist/web), served by the coordinator (src/coordinator/web.ts).
 * Everything is bundled: the app needs no CDN and no internet.
 */
import react from '@vitejs/plugin-react';
import { defineConfig, type Plugin } from 'vite';

/**
 * src/client/client.ts still imports node:fs and node:stream for its file transfers (uploadFile, downloadBlob),
 * which the dashboard never calls. This resolves those node: modules to stubs that throw if ever used, so the
 * browser bundle can import the typed client as it is. Drop it once the file transfers live in src/client/files.ts.
 */
function nodeStubs(): Plugin {
  const names = ['createReadStream', 'createWriteStream', 'stat', 'Readable', 'Transform', 'pipeline', 'ReadableStream'];
  return {
    name: 'deqo-node-stubs',
    enforce: 'pre',
    resolveId(id) { return id.startsWith('node:') ? `\0node-stub:${id}` : null; },
    load(id) {
      if (!id.startsWith('\0node-stub:')) return null;
      const mod = id.slice('\0node-stub:'.length);
      const stub = `() => { throw new Error('${mod} is not available in the browser'); }`;
      return names.map((n) => `export const ${n} = ${stub};`).join('\n') + '\nexport default {};';
    },
  };
}

export default defineConfig({
  root: 'web',
  base: '/',
  plugins: [nodeStubs(), react()],
  build: {
    outDir: '../dist/web', emptyOutDir: true, chunkSizeWarningLimit: 2000,
    rollupOptions: {
      // zod's sources carry /*@__PURE__*/ comments Rollup cannot place; harmless, and not ours to fix.
      onwarn(w, warn) { if (w.code !== 'INVALID_ANNOTATION') warn(w); },
    },
  },
});
