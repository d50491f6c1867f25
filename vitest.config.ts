import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: {
    // graphql 16 ships CJS (`main`) and ESM (`module`) builds. Node loads the CJS one for
    // yoga and Pothos; Vite would pick the ESM one for our sources, and two GraphQLError
    // classes would break every `instanceof`. One build for everybody, as under Node.
    alias: [{ find: /^graphql$/, replacement: 'graphql/index.js' }],
  },
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    // Disposes whatever fixture a failed test left behind (test/helpers/leftovers.ts).
    setupFiles: ['test/helpers/leftovers-hooks.ts'],
    testTimeout: 20_000,
    hookTimeout: 20_000,
    // Two cores: files run in parallel forks, each with its own servers on port 0.
    pool: 'forks',
    maxWorkers: 2,
  },
});
