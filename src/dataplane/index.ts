// The seam between the daemon and the kernel side: both import this, neither the other.
export * from './errors.js';
export * from './types.js';
