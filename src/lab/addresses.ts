// The addresses of the lab's topologies (topology.ts, mesh-topology.ts), apart from the
// code that builds them so unit tests can name them without creating anything.

/** The two-namespace topology: the pod, its peer, and the "remote" on the peer's lo. */
export interface Addresses {
  pod4: string;
  pod6: string;
  peer4: string;
  peer6: string;
  remote4: string;
  remote6: string;
}

export const ADDRESSES: Readonly<Addresses> = Object.freeze({
  pod4: '10.1.0.2',
  pod6: 'fd00::2',
  peer4: '10.1.0.1',
  peer6: 'fd00::1',
  remote4: '10.2.0.5',
  remote6: 'fd00:2::5',
});

/** The VM behind a second pod interface (reroute/KubeVirt goldens), and remotes outside 10/8. */
export const VM_ADDRESSES = Object.freeze({
  route4: '10.3.0.1',
  route6: 'fd00:3::1',
  vm4: '10.3.0.2',
  vm6: 'fd00:3::2',
  other4: '192.0.2.5',
  other6: '2001:db8::5',
});

export type PodName = 'a' | 'b';
export const POD_NAMES: readonly PodName[] = Object.freeze(['a', 'b']);

export interface PodAddresses {
  v4: string;
  v6: string;
}

/** The mesh: pod a has the pod addresses of the two-namespace topology, the node its peer's. */
export const MESH_ADDRESSES: Readonly<Record<PodName | 'node', PodAddresses>> = Object.freeze({
  a: { v4: ADDRESSES.pod4, v6: ADDRESSES.pod6 },
  b: { v4: '10.1.0.3', v6: 'fd00::3' },
  node: { v4: ADDRESSES.peer4, v6: ADDRESSES.peer6 },
});
