// Typed errors: a stable code, and a message that names the input and the fix.
import { SluiceError } from '../errors.js';

export type PolicyErrorCode =
  | 'BAD_CIDR'
  | 'BAD_PORT'
  | 'BAD_WILDCARD'
  | 'BAD_ID'
  | 'BAD_MODE'
  | 'BAD_ADDRESS'
  | 'BAD_OBJECT'
  | 'BAD_CONFIG'
  | 'BAD_ANNOTATION'
  | 'TOO_MANY'
  /** A setting istio-iptables has and sluice does not implement: refused, never ignored. */
  | 'UNSUPPORTED';

/** Longest value quoted in a message: an annotation may be megabytes long. */
const QUOTED_MAX = 200;
const quoted = (v: string) => JSON.stringify(v.length > QUOTED_MAX ? `${v.slice(0, QUOTED_MAX)}...` : v);

export class PolicyError extends SluiceError {
  declare readonly code: PolicyErrorCode;
  constructor(
    code: PolicyErrorCode,
    /** The object the bad value came from, e.g. `Pod default/app` or `Sidecar ns/x`. */
    readonly object: string,
    /** The field, e.g. an annotation key or `spec.ingress[0].port.number`. */
    readonly field: string,
    readonly value: string,
    readonly fix: string,
  ) {
    super(code, `${object}: ${field}=${quoted(value)} is invalid: ${fix}`);
  }

  toJSON(): Record<string, string> {
    return { code: this.code, object: this.object, field: this.field, value: this.value, message: this.message };
  }
}

/** A usage error from the CLI or a source: exit code 2. */
export class InputError extends SluiceError {
  constructor(code: string, message: string, hint?: string) {
    super(code, message, { exitCode: 2, ...(hint ? { hint } : {}) });
  }
}
