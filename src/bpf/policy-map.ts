// The writer that puts a pod's policy in the pinned maps for one netns cookie. It is
// crash-safe in either order, so a kill -9 at any point never lets a pod see another
// pod's sets:
//  - a change writes the new sets under a fresh pod id, flips the pod's entry in one
//    update, then deletes the old id's sets; removal deletes the entry, then the sets;
//  - a pod id is taken from the kernel maps, never from memory, and is never reused while
//    any set entry still carries it (a crash leaves such entries behind);
//  - collectGarbage() at startup deletes set entries whose pod id no pod entry refers to.
import { decodePodPolicy, decodeU32, decodeU64, encodeAddrKey, encodeU64, LAYOUTS, type PodPolicyValue } from './codec.js';
import type { CapturePolicy } from '../policy/types.js';
import { MAPS, SET_MAPS, type SetMapName } from './map-table.js';
import type { SluiceMaps } from './maps.js';
import { encodePolicy, toBytes, type EncodedEntries, type PodNetns } from './policy-encode.js';

export { encodePolicy, LOOPBACK_INTERFACE, PolicyEncodeError, type PodNetns, type PolicyEntries, type Route } from './policy-encode.js';

interface SetKey {
  map: SetMapName;
  key: Buffer;
}

/** Every set key is a struct whose pod_id field names the pod (sluice.h). */
function podIdOfSetKey(map: SetMapName, key: Buffer): number {
  const offsets: Record<string, number> = LAYOUTS[MAPS[map].key as keyof typeof LAYOUTS].offsets;
  return decodeU32(key.subarray(offsets.pod_id));
}

export interface ApplyResult {
  /** False when the maps already held exactly this policy. */
  written: boolean;
  podId: number;
}

/** A policy in force but not final: commit() drops what it replaced, rollback() restores it. */
export interface StagedPolicy extends ApplyResult {
  commit(): void;
  rollback(): void;
}

export interface GarbageReport {
  /** Set entries whose pod id no pod entry refers to (left by a crash mid-apply or mid-remove). */
  sets: number;
  /** sluice_addrs entries whose netns has no pod entry. */
  addrs: number;
}

/** Writes and removes pod policies in the pinned maps. */
export class PolicyMaps {
  private lastPodId = 0;

  constructor(private readonly maps: SluiceMaps) {
    this.lastPodId = Math.max(0, ...this.podIdsInUse());
  }

  /** Every policy in the kernel, by netns cookie. */
  entries(): Map<bigint, PodPolicyValue> {
    const out = new Map<bigint, PodPolicyValue>();
    for (const k of this.maps.keys('sluice_pods')) {
      const v = this.maps.lookup('sluice_pods', k);
      if (v) out.set(decodeU64(k), decodePodPolicy(v));
    }
    return out;
  }

  get(netnsCookie: bigint): PodPolicyValue | null {
    const v = this.maps.lookup('sluice_pods', encodeU64(netnsCookie));
    return v ? decodePodPolicy(v) : null;
  }

  /** Every set-map key, by the pod id it carries: one walk of the set maps. */
  private setKeysByPod(): Map<number, SetKey[]> {
    const out = new Map<number, SetKey[]>();
    for (const map of SET_MAPS) {
      for (const key of this.maps.keys(map)) {
        const id = podIdOfSetKey(map, key);
        let list = out.get(id);
        if (!list) out.set(id, (list = []));
        list.push({ map, key });
      }
    }
    return out;
  }

  private setKeysOf(podId: number): SetKey[] {
    return this.setKeysByPod().get(podId) ?? [];
  }

  /** Pod ids the kernel holds: in pod entries, and in set entries (orphans included). */
  private podIdsInUse(): Set<number> {
    const ids = new Set([...this.entries().values()].map((v) => v.podId));
    for (const id of this.setKeysByPod().keys()) ids.add(id);
    return ids;
  }

  /** True when the maps hold exactly `wanted` (encoded under the current pod id). */
  private unchanged(netnsCookie: bigint, podId: number, wanted: EncodedEntries): boolean {
    const raw = this.maps.lookup('sluice_pods', encodeU64(netnsCookie));
    if (!raw || !raw.equals(wanted.value)) return false;
    const have = this.setKeysOf(podId);
    if (have.length !== wanted.sets.length) return false;
    const want = new Set(wanted.sets.map((s) => `${s.map}:${s.key.toString('hex')}:${s.value.toString('hex')}`));
    return have.every((h) => want.has(`${h.map}:${h.key.toString('hex')}:${this.maps.lookup(h.map, h.key)?.toString('hex')}`));
  }

  /** A pod id no entry of any map carries, read from the kernel so a restart cannot reuse one. */
  private nextPodId(): number {
    const inUse = this.podIdsInUse();
    let id = this.lastPodId;
    do id = id >= 0xfffffffe ? 1 : id + 1;
    while (inUse.has(id));
    this.lastPodId = id;
    return id;
  }

  /**
   * Keeps sluice_addrs (captured pod addresses on this node, for acceleration) in step
   * with the pod's addresses: `was` are the ones it had, `now` the ones it has.
   */
  private syncAddresses(netnsCookie: bigint, was: string[], now: string[]): void {
    const owner = encodeU64(netnsCookie);
    for (const ip of now) {
      const key = encodeAddrKey(ip);
      if (!this.maps.lookup('sluice_addrs', key)?.equals(owner)) this.maps.update('sluice_addrs', key, owner);
    }
    const keep = new Set(now.map((ip) => encodeAddrKey(ip).toString('hex')));
    for (const ip of was) {
      const key = encodeAddrKey(ip);
      // Only our own entry: the address may belong to a newer pod by now.
      if (!keep.has(key.toString('hex')) && this.maps.lookup('sluice_addrs', key)?.equals(owner)) this.maps.delete('sluice_addrs', key);
    }
  }

  /**
   * Puts `policy` in force for the netns, keeping what it replaced until commit(), so the
   * caller can still roll the pod back to exactly its previous state.
   */
  stage(netnsCookie: bigint, policy: CapturePolicy, netns: PodNetns): StagedPolicy {
    const podKey = encodeU64(netnsCookie);
    const previousRaw = this.maps.lookup('sluice_pods', podKey);
    const current = previousRaw ? decodePodPolicy(previousRaw) : null;
    const hadAddresses = current ? [...current.ip4, ...current.ip6] : [];
    if (current) {
      const wanted = toBytes(encodePolicy(policy, current.podId, netns));
      if (this.unchanged(netnsCookie, current.podId, wanted)) {
        // Also fills the addresses in after an upgrade.
        return { written: false, podId: current.podId, commit: () => this.syncAddresses(netnsCookie, hadAddresses, policy.podIPs), rollback: () => {} };
      }
    }
    const podId = this.nextPodId();
    const entries = toBytes(encodePolicy(policy, podId, netns));
    const written: SetKey[] = [];
    const dropNew = () => {
      for (const w of written) this.maps.delete(w.map, w.key);
    };
    try {
      for (const s of entries.sets) {
        this.maps.update(s.map, s.key, s.value);
        written.push(s);
      }
      this.maps.update('sluice_pods', podKey, entries.value); // the flip
    } catch (err) {
      dropNew();
      throw err;
    }
    return {
      written: true,
      podId,
      commit: () => {
        this.syncAddresses(netnsCookie, hadAddresses, policy.podIPs); // may fail: the old sets are still there
        if (current) for (const old of this.setKeysOf(current.podId)) this.maps.delete(old.map, old.key);
      },
      rollback: () => {
        this.syncAddresses(netnsCookie, policy.podIPs, hadAddresses);
        if (previousRaw) this.maps.update('sluice_pods', podKey, previousRaw);
        else this.maps.delete('sluice_pods', podKey);
        dropNew();
      },
    };
  }

  /** Puts `policy` in force for the netns; all or nothing. */
  apply(netnsCookie: bigint, policy: CapturePolicy, netns: PodNetns): ApplyResult {
    const staged = this.stage(netnsCookie, policy, netns);
    staged.commit();
    return { written: staged.written, podId: staged.podId };
  }

  /** Stops capturing the netns: its policy first, so programs stop at once, then its sets. */
  remove(netnsCookie: bigint): boolean {
    const current = this.get(netnsCookie);
    if (!current) return false;
    this.maps.delete('sluice_pods', encodeU64(netnsCookie));
    for (const old of this.setKeysOf(current.podId)) this.maps.delete(old.map, old.key);
    this.syncAddresses(netnsCookie, [...current.ip4, ...current.ip6], []);
    return true;
  }

  /**
   * Deletes what a crash left behind: set entries no pod entry refers to, and addresses of
   * netns without a pod entry. Only while holding the pin-directory lock: another writer's
   * staged sets would look the same.
   */
  collectGarbage(): GarbageReport {
    const pods = this.entries();
    const live = new Set([...pods.values()].map((v) => v.podId));
    const report: GarbageReport = { sets: 0, addrs: 0 };
    for (const [id, keys] of this.setKeysByPod()) {
      if (live.has(id)) continue;
      for (const k of keys) if (this.maps.delete(k.map, k.key)) report.sets++;
    }
    for (const key of this.maps.keys('sluice_addrs')) {
      const owner = this.maps.lookup('sluice_addrs', key);
      if (owner && !pods.has(decodeU64(owner)) && this.maps.delete('sluice_addrs', key)) report.addrs++;
    }
    return report;
  }
}
