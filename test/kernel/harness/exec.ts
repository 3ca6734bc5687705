// Moved to src/lab: the demo uses it too.
export * from '../../../src/lab/exec.js';
