import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          testTimeout: 60_000,
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          globalSetup: ['test/integration/global-setup.ts'],
          testTimeout: 120_000,
          hookTimeout: 300_000,
          // One control plane serves every file; run the files one after another.
          fileParallelism: false,
        },
      },
      {
        test: {
          name: 'node',
          include: ['test/node/**/*.test.ts'],
          globalSetup: ['test/node/global-setup.ts'],
          testTimeout: 300_000,
          hookTimeout: 600_000,
          // One node (one bridge, one set of kube-proxy rules on this machine) serves every file.
          fileParallelism: false,
          // A group of its own (vitest runs groups one after another; the integration files, which
          // disable file parallelism, run last in theirs): pods starting on this 2-core machine
          // would slow the integration tests' timed waits.
          sequence: { groupOrder: 1 },
        },
      },
    ],
  },
});
