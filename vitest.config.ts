import react from '@vitejs/plugin-react';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    testTimeout: 120_000,
    hookTimeout: 180_000,
    // Integration suites share one Docker engine on a 2-core machine: run files one at a time.
    fileParallelism: false,
    reporters: ['default'],
    projects: [
      // Server, client, CLI and the end-to-end suites: Node.
      { extends: true, test: { name: 'node', include: ['test/**/*.test.ts'], environment: 'node' } },
      // The dashboard's components: a DOM (jsdom).
      { extends: true, plugins: [react()], test: { name: 'web', include: ['web/test/**/*.test.{ts,tsx}'], environment: 'jsdom', testTimeout: 20_000 } },
    ],
  },
});
