// The addresses of the two-namespace topology, from the lab's table (src/lab/addresses.ts),
// which builds nothing: unit tests name them without the kernel harness.
export { ADDRESSES, type Addresses } from '../../src/lab/addresses.js';
