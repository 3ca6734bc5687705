// The pure policy layer: no I/O, no imports from outside src/policy.
export * from './types.js';
export * from './errors.js';
export * from './net.js';
export * from './k8s.js';
export * from './config.js';
export * from './limits.js';
export * from './annotations.js';
export * from './sidecar.js';
export * from './build.js';
export * from './decide.js';
export * from './iptables.js';
