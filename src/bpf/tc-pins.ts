// Where the tc reroute programs of each pod netns are pinned: <bpffs>/progs/<cookie>/<prog>.
import { existsSync, readdirSync, rmdirSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';

export const TC_REROUTE_PROGRAMS = ['sluice_reroute_ingress', 'sluice_reroute_egress'] as const;

export function progPinPath(bpffsDir: string, netnsCookie: bigint, program: string): string {
  return join(bpffsDir, 'progs', netnsCookie.toString(), program);
}

/** Unpins the tc programs of one pod netns, or of all of them (attached filters keep theirs). */
export function unpinRerouteInstances(bpffsDir: string, netnsCookie?: bigint): void {
  const progs = join(bpffsDir, 'progs');
  if (!existsSync(progs)) return;
  for (const dir of readdirSync(progs)) {
    if (netnsCookie !== undefined && dir !== netnsCookie.toString()) continue;
    for (const name of readdirSync(join(progs, dir))) unlinkSync(join(progs, dir, name));
    rmdirSync(join(progs, dir));
  }
  if (netnsCookie === undefined) rmdirSync(progs);
}
