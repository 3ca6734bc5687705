// What only the built objects can tell: the kfuncs they declare (from their BTF), and
// whether each one loads into this kernel at all (opened with small private maps, loaded,
// closed: nothing is pinned or attached). A doctor that says "can run" where the loader
// then fails is the worst answer it can give, so the objects themselves are the last word.
import { errorText } from '../errors.js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { KFUNC_FALLBACKS } from './fallbacks.js';
import * as bpf from './libbpf.js';
import { btfAvailableForProbe, kernelHasFunc, objectExterns, quietly } from './libbpf-probes.js';
import { CGROUP_PROGRAMS, SK_LOOKUP_OBJECT, SK_MSG_OBJECT } from './objects.js';
import { openPrivate } from './open-object.js';
import { FEATURES, RDONLY_CAST_FALLBACK, type Feature } from './probes.js';

/** Every object the loader and the sockmap check load. */
export const OBJECTS: readonly string[] = [...new Set<string>([...CGROUP_PROGRAMS.map((p) => p.object), SK_LOOKUP_OBJECT, SK_MSG_OBJECT])];

export { openPrivate } from './open-object.js';

/**
 * One feature per kfunc the objects declare. A kfunc with a fallback (fallbacks.ts) is not
 * required, but its fallback is. Objects that are not built declare nothing here; the
 * doctor's bpf-objects check reports them.
 */
export function kfuncFeatures(objectDir: string): Feature[] {
  const users = new Map<string, string[]>();
  for (const o of OBJECTS) {
    const path = join(objectDir, `${o}.bpf.o`);
    if (!existsSync(path)) continue;
    for (const e of objectExterns(path)) if (e.kind === 'func') users.set(e.name, [...(users.get(e.name) ?? []), o]);
  }
  const out: Feature[] = [];
  for (const [name, objects] of users) {
    const fallback = KFUNC_FALLBACKS[name];
    const probe = () => btfAvailableForProbe() && kernelHasFunc(name);
    out.push({ kind: 'kfunc', name, use: `${objects.join(', ')}.bpf.o${fallback ? `; without it ${fallback.instead}` : ''}`, required: !fallback, ...(fallback ? { since: fallback.since } : {}), probe });
    // The fallback is what a kernel without the kfunc runs: then it is required.
    if (name === 'bpf_rdonly_cast') out.push({ ...RDONLY_CAST_FALLBACK, probe: () => probe() || RDONLY_CAST_FALLBACK.probe() });
  }
  return out;
}

export interface ObjectLoad {
  object: string;
  /** null when it loaded; else why not. */
  error: string | null;
}

/** Loads each built object into the kernel as the loader would, then drops it. */
export function loadEachObject(objectDir: string): ObjectLoad[] {
  return OBJECTS.filter((o) => existsSync(join(objectDir, `${o}.bpf.o`))).map((object) => {
    try {
      quietly(() => bpf.closeObject(openPrivate(objectDir, object, `${object} (doctor)`)));
      return { object, error: null };
    } catch (err) {
      return { object, error: errorText(err) };
    }
  });
}

/** What the objects need from this kernel: the fixed list plus the kfuncs they declare. */
export function kernelFeatures(objectDir: string): Feature[] {
  return [...FEATURES, ...kfuncFeatures(objectDir)];
}
