// sluice-bench's shared parts: the stream protocol, the byte pattern, blocking I/O,
// latency samples and CPU accounting. Each mode (bench_serve.c, bench_run.c,
// bench_stream.c) keeps its state in its own context struct; see bench.c for the modes.
#ifndef SLUICE_BENCH_H
#define SLUICE_BENCH_H

#include <stddef.h>
#include <stdint.h>

#include "sockaddr.h"

#define SO_ORIGINAL_DST 80 // <linux/netfilter_ipv4.h>; the same value for SOL_IPV6
#define MAX_PORTS 16
#define MAX_CONCURRENCY 1024

__attribute__((noreturn)) void bench_die(const char *what);
static inline void die(const char *what) { bench_die(what); }
uint64_t now_ns(void);
int parse_ports(const char *text, int *out, int max);

// ----------------------------------------------------------------- stream protocol

#define STREAM_MAGIC 0x31424c53u // "SLB1"
enum { OP_END = 0, OP_UP = 1, OP_DOWN = 2, OP_PING = 3 };

// One request, client to server. up: `bytes` follow in `size`-byte writes, the server
// answers with an ack_t. down: the server writes `bytes` in `size`-byte writes. ping:
// `count` round trips of `size` bytes, echoed. `offset` is the stream offset of the
// first byte, so both ends know which pattern bytes to expect.
typedef struct {
  uint32_t magic, op, size, count;
  uint64_t offset, bytes;
} req_t;

typedef struct {
  uint64_t got;
  int64_t bad; // stream offset of the first byte that differed from the pattern, or -1
} ack_t;

#define MAX_IO (1u << 20)      // the largest write size
#define READ_SIZE (256u << 10) // what both ends ask read() for
#define CHUNK (4u << 20)       // bytes per up/down request: a multiple of every write size
#define PING_BATCH 1000u

void make_pattern(void);
const unsigned char *pat(uint64_t offset);
int64_t check(const unsigned char *buf, size_t n, uint64_t offset);
int read_full(int fd, void *buf, size_t n);
int write_full(int fd, const void *buf, size_t n);
void stream_socket(int fd);

// ------------------------------------------------------------------ measurements

typedef struct {
  uint64_t *v;
  size_t n, cap;
} samples_t;

void push(samples_t *s, uint64_t x);
void sort_samples(samples_t *s);
double pct(const samples_t *s, double p);
double mean_us(const samples_t *s);

uint64_t cpu_ns(int pid);
uint64_t cgroup_ns(const char *dir);

// The pinned CPU's kernel threads. Work the traffic causes but no process of ours runs
// lands there: softirqs the kernel defers (ksoftirqd/N), and work items queued on this
// CPU (kworker/N:*; tearing down a socket that was in a sockmap, for one).
#define MAX_KTHREADS 256

typedef struct {
  int n;
  struct {
    int pid;
    uint64_t ns;
  } t[MAX_KTHREADS];
} kthreads_t;

void kthreads_read(kthreads_t *k, int cpu);
uint64_t kthreads_since(const kthreads_t *then, const kthreads_t *now);

const char *json_text(const char *in);

// ------------------------------------------------------------------------- modes

typedef struct {
  const char *dst, *expect, *send, *expect_in, *cgroup_cpu;
  int server_pid, pinned_cpu, concurrency, warmup_ms, duration_ms, close_rst;
  unsigned long count;
} run_opts_t;

typedef struct {
  const char *dst, *expect, *writes;
  int server_pid, pinned_cpu, ping_size, warmup_ms, duration_ms;
} stream_opts_t;

__attribute__((noreturn)) void bench_serve(const char *ports, const char *stream_ports);
int bench_run(const run_opts_t *o);
int bench_stream(const stream_opts_t *o);

#endif
