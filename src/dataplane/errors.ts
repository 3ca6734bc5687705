// The errors of the data plane that the daemon tells apart (src/bpf raises them).
import { SluiceError } from '../errors.js';

export class NetnsError extends SluiceError {
  constructor(readonly path: string, cause: string) {
    super('NETNS_UNAVAILABLE', `network namespace ${path} is not available (${cause}); check the pod's sluice.dev/netns annotation`, { exitCode: 1 });
  }
}

/**
 * A netns path the daemon will not capture: not a network namespace file (a FIFO, a
 * device, another kind of namespace), or the host's or the daemon's own namespace. The
 * pod is rejected and nothing of it is written.
 */
export class NetnsRefusedError extends SluiceError {
  constructor(
    readonly path: string,
    why: string,
  ) {
    super('NETNS_REFUSED', `network namespace ${path} refused: ${why}`, {
      hint: "set the pod's sluice.dev/netns annotation to its own netns (/var/run/netns/NAME or /proc/PID/ns/net)",
      exitCode: 2,
    });
  }
}

/** A map that cannot take another entry. Counted and reported, never silent. */
export class MapFullError extends SluiceError {
  /** `flag`: the `sluice run` flag that sizes `map`, when one does (the data plane knows). */
  constructor(readonly map: string, capacity: number, flag?: string) {
    // A pinned map keeps the size it was created with, so a larger flag needs a fresh install.
    const fix = flag
      ? `raise sluice run ${flag} (a pinned map keeps its size until \`sluice uninstall\`)`
      : 'it holds the port, CIDR, interface and bind sets of all pods together; shorten the pods\' lists';
    super('MAP_FULL', `BPF map ${map} is full (${capacity} entries)`, { hint: fix });
  }
}

export class UnknownNetnsError extends SluiceError {
  constructor(cookie: bigint) {
    super('NETNS_UNKNOWN', `netns cookie ${cookie} was never resolved from a path by this data plane; call cookieOf(path) first`);
  }
}
