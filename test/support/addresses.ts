// The addresses of the two-namespace topology (test/kernel/harness/topology.ts), apart from
// it so unit tests can name them without importing the kernel harness.
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
