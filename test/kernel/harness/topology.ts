// The two-namespace topology the kernel tests stand on is the lab's (src/lab/topology.ts,
// one builder for it and the mesh); this module keeps the harness's import path.
export { ADDRESSES, createTopology, destroyAllTopologies, VM_ADDRESSES, type Addresses, type Topology, type TopologyOptions } from '../../../src/lab/topology.js';
export { deleteNetns, NETNS_PREFIX, pidAlive, reapStaleNamespaces, waitUsable, type Netns } from '../../../src/lab/netns.js';
