// The sk_msg program on the sluice_accel sockhash: a pinned link where the kernel has
// sockmap links (6.10+), adopted on a restart and given the new program; else
// bpf_prog_attach, which lives as long as the map.
import { join } from 'node:path';
import * as bpf from './libbpf.js';
import { pinnedLinkInfo } from './link-info.js';
import { attachToMap, detachPinnedLink } from './links.js';
import { mapInfoOf } from './map-info.js';
import { ACCEL_MAP, SK_MSG_PROGRAM } from './objects.js';
import type { Pins } from './pins.js';
import { ATTACH_TYPES } from './probe-facts.js';

export interface LinkReport {
  /** Programs attached by this call. */
  attached: string[];
  /** Programs whose pinned link was adopted and given the newly loaded program. */
  updated: string[];
  /** Maps that were pinned before this install and were reused (their contents survive). */
  adoptedMaps: string[];
}

/**
 * Sockets already in the map keep the program they were enrolled with until they close.
 * A pinned link that serves another sluice_accel (the map was replaced) is replaced too.
 */
export function attachSkMsg(prog: bpf.BpfProgram, pins: Pins, report: LinkReport, log: (m: string) => void): void {
  const mapPath = join(pins.maps, ACCEL_MAP);
  const linkPath = join(pins.links, SK_MSG_PROGRAM);
  const progFd = bpf.programFd(prog);
  const mapFd = bpf.objGet(mapPath);
  try {
    const pinned = pinnedLinkInfo(linkPath);
    if (pinned && pinned.sockmapMapId === mapInfoOf(mapFd, mapPath).id) {
      const fd = bpf.objGet(linkPath);
      try {
        bpf.linkUpdate(fd, progFd, linkPath);
      } finally {
        bpf.closeFd(fd);
      }
      report.updated.push(SK_MSG_PROGRAM);
      return;
    }
    if (pinned) {
      log(`${linkPath} served another ${ACCEL_MAP}; replacing it`);
      detachPinnedLink(linkPath);
    }
    const linkFd = attachToMap(progFd, mapFd, ATTACH_TYPES.BPF_SK_MSG_VERDICT, `${SK_MSG_PROGRAM} on ${mapPath}`);
    if (linkFd === null) {
      log(`this kernel has no sockmap links: ${SK_MSG_PROGRAM} is attached to ${ACCEL_MAP} directly and stays until the map is removed`);
      // A map of an earlier install already had one; the attach replaced it, in place.
      (report.adoptedMaps.includes(ACCEL_MAP) ? report.updated : report.attached).push(SK_MSG_PROGRAM);
      return;
    }
    try {
      bpf.objPin(linkFd, linkPath);
    } finally {
      bpf.closeFd(linkFd); // unpinned, closing detaches it
    }
    report.attached.push(SK_MSG_PROGRAM);
  } finally {
    bpf.closeFd(mapFd);
  }
}
