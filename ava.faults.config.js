// `npm run test:faults`: the fault suite (issue 9), kept out of `npm test` for its length.
export default {
  extensions: { ts: 'module' },
  nodeArguments: ['--import=tsx'],
  files: ['test/faults/**/*.test.ts'],
  timeout: '15m', // the soak test runs 10 min on its own (test/faults/soak.test.ts)
  workerThreads: false,
  serial: true,
  concurrency: 1, // one load test at a time: the soak's slopes and the rates must not share the CPU
};
