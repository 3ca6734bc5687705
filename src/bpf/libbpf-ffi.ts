// The koffi binding to libbpf.so.1 (and the few libc calls the loader needs), and the
// checkers every call goes through: a failure throws BpfError. libbpf.ts and libbpf-fd.ts
// wrap these calls; nothing here knows about sluice's maps or programs.
import koffi from 'koffi';
import { BpfError, ERRNO } from './bpf-error.js';

export const lib = koffi.load('libbpf.so.1');
const libc = koffi.load('libc.so.6');

const bpfObject = koffi.opaque('bpf_object');
const bpfProgram = koffi.opaque('bpf_program');
const bpfMap = koffi.opaque('bpf_map');
const bpfLink = koffi.opaque('bpf_link');
koffi.pointer(bpfObject);
koffi.pointer(bpfProgram);
koffi.pointer(bpfMap);
koffi.pointer(bpfLink);

/** Opaque libbpf handles; only this module looks inside. */
export type BpfObject = { readonly __brand: 'bpf_object' };
export type BpfProgram = { readonly __brand: 'bpf_program' };
export type BpfMap = { readonly __brand: 'bpf_map' };
export type BpfLink = { readonly __brand: 'bpf_link' };

export const c = {
  open_file: lib.func('bpf_object *bpf_object__open_file(const char *path, const void *opts)'),
  load: lib.func('int bpf_object__load(bpf_object *obj)'),
  close: lib.func('void bpf_object__close(bpf_object *obj)'),
  next_program: lib.func('bpf_program *bpf_object__next_program(const bpf_object *obj, bpf_program *prog)'),
  find_program: lib.func('bpf_program *bpf_object__find_program_by_name(const bpf_object *obj, const char *name)'),
  program_name: lib.func('const char *bpf_program__name(const bpf_program *prog)'),
  program_fd: lib.func('int bpf_program__fd(const bpf_program *prog)'),
  set_autoload: lib.func('int bpf_program__set_autoload(bpf_program *prog, bool autoload)'),
  next_map: lib.func('bpf_map *bpf_object__next_map(const bpf_object *obj, const bpf_map *map)'),
  map_name: lib.func('const char *bpf_map__name(const bpf_map *map)'),
  map_fd: lib.func('int bpf_map__fd(const bpf_map *map)'),
  map_is_internal: lib.func('bool bpf_map__is_internal(const bpf_map *map)'),
  map_value_size: lib.func('uint32_t bpf_map__value_size(const bpf_map *map)'),
  map_key_size: lib.func('uint32_t bpf_map__key_size(const bpf_map *map)'),
  map_type: lib.func('int bpf_map__type(const bpf_map *map)'),
  map_max_entries: lib.func('uint32_t bpf_map__max_entries(const bpf_map *map)'),
  map_set_pin_path: lib.func('int bpf_map__set_pin_path(bpf_map *map, const char *path)'),
  map_set_max_entries: lib.func('int bpf_map__set_max_entries(bpf_map *map, uint32_t max_entries)'),
  map_set_initial_value: lib.func('int bpf_map__set_initial_value(bpf_map *map, const void *data, size_t size)'),
  attach_cgroup: lib.func('bpf_link *bpf_program__attach_cgroup(const bpf_program *prog, int cgroup_fd)'),
  attach_netns: lib.func('bpf_link *bpf_program__attach_netns(const bpf_program *prog, int netns_fd)'),
  link_pin: lib.func('int bpf_link__pin(bpf_link *link, const char *path)'),
  link_fd: lib.func('int bpf_link__fd(const bpf_link *link)'),
  link_disconnect: lib.func('void bpf_link__disconnect(bpf_link *link)'),
  link_destroy: lib.func('int bpf_link__destroy(bpf_link *link)'),
  obj_get: lib.func('int bpf_obj_get(const char *pathname)'),
  obj_pin: lib.func('int bpf_obj_pin(int fd, const char *pathname)'),
  link_update: lib.func('int bpf_link_update(int link_fd, int new_prog_fd, const void *opts)'),
  link_create: lib.func('int bpf_link_create(int prog_fd, int target_fd, int attach_type, const void *opts)'),
  prog_attach: lib.func('int bpf_prog_attach(int prog_fd, int attachable_fd, int type, unsigned int flags)'),
  prog_query: lib.func('int bpf_prog_query(int target_fd, int type, unsigned int query_flags, _Out_ uint32_t *attach_flags, void *prog_ids, _Inout_ uint32_t *prog_cnt)'),
  probe_prog_type: lib.func('int libbpf_probe_bpf_prog_type(int prog_type, const void *opts)'),
  probe_map_type: lib.func('int libbpf_probe_bpf_map_type(int map_type, const void *opts)'),
  probe_helper: lib.func('int libbpf_probe_bpf_helper(int prog_type, int helper_id, const void *opts)'),
  link_detach: lib.func('int bpf_link_detach(int link_fd)'),
  obj_get_info_by_fd: lib.func('int bpf_obj_get_info_by_fd(int bpf_fd, _Inout_ void *info, _Inout_ uint32_t *info_len)'),
  map_update_elem: lib.func('int bpf_map_update_elem(int fd, const void *key, const void *value, uint64_t flags)'),
  map_lookup_elem: lib.func('int bpf_map_lookup_elem(int fd, const void *key, _Out_ void *value)'),
  map_delete_elem: lib.func('int bpf_map_delete_elem(int fd, const void *key)'),
  map_get_next_key: lib.func('int bpf_map_get_next_key(int fd, const void *key, _Out_ void *next_key)'),
  map_lookup_batch: lib.func('int bpf_map_lookup_batch(int fd, void *in_batch, void *out_batch, void *keys, void *values, _Inout_ uint32_t *count, const void *opts)'),
  libc_close: libc.func('int close(int fd)'),
  libc_syscall: libc.func('long syscall(long number, ...)'),
};

/** The errno of a failed libbpf call: libbpf 1.x returns -errno and also sets errno. */
export function errnoOf(ret: number): number {
  return ret < 0 ? -ret : koffi.errno() || ERRNO.EINVAL;
}

export function check(op: string, ret: number): number {
  if (ret < 0) throw new BpfError(op, errnoOf(ret));
  return ret;
}

export function checkPtr<T>(op: string, ptr: unknown): T {
  if (ptr === null) throw new BpfError(op, koffi.errno() || ERRNO.EINVAL);
  return ptr as T;
}
