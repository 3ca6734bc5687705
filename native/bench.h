// bench.h: what the parts of sluice-bench share. bench.c: usage, options and main;
// bench_serve.c: the proxy stand-in; bench_run.c: the connection-rate client;
// bench_stream.c: the one-connection stream client; bench_stats.c: samples, CPU time,
// JSON text; bench_pattern.c: the stream protocol's byte pattern and blocking I/O.
// No state is global: each mode owns a context struct and passes it down.
#ifndef SLUICE_BENCH_H
#define SLUICE_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define SO_ORIGINAL_DST 80 // <linux/netfilter_ipv4.h>; the same value for SOL_IPV6
#define MAX_PORTS 16
#define MAX_CONCURRENCY 1024

// Every option of every mode, as given (see the usage at the top of bench.c).
typedef struct {
  const char *mode, *netns, *dst, *tcp, *stream_ports, *writes;
  const char *expect, *send, *expect_in, *cgroup_cpu, *close;
  int pin, cpu;     // --cpu given, and which (cpu -1 when not pinned)
  int set_uid, uid; // --uid given, and which
  int server_pid, concurrency, warmup_ms, duration_ms, ping_size;
  unsigned long count;
} bench_opts_t;

// Prints "sluice-bench: WHAT: strerror(errno)" and exits 2.
__attribute__((noreturn)) void bench_die(const char *what);
uint64_t now_ns(void);
// "80,443" into out[max]; returns how many.
int parse_ports(const char *text, int *out, int max);

// ------------------------------------------------------------------ stats (bench_stats.c)

typedef struct {
  uint64_t *v;
  size_t n, cap;
} samples_t;

void push(samples_t *s, uint64_t x);
void sort_samples(samples_t *s);
double pct(const samples_t *s, double p); // nearest rank, in microseconds (sorted first)
double mean_us(const samples_t *s);

// Nanoseconds a process has run (pid 0: this one), the softirqs it raised included.
uint64_t cpu_ns(int pid);
// usage_usec of a cgroup's cpu.stat, in ns (0 when unreadable).
uint64_t cgroup_ns(const char *dir);

// The pinned CPU's kernel threads and the time each has run.
#define MAX_KTHREADS 256
typedef struct {
  int n;
  struct {
    int pid;
    uint64_t ns;
  } t[MAX_KTHREADS];
} kthreads_t;

void kthreads_read(kthreads_t *k, int cpu); // cpu -1: none
uint64_t kthreads_since(const kthreads_t *then, const kthreads_t *now);

// `in` as a JSON string body (quotes, backslashes and control bytes escaped) into out.
const char *json_text(const char *in, char *out, size_t n);
#define JSON_TEXT_MAX (4 * 200)

// ------------------------------------------------------- stream protocol (bench_pattern.c)

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

// The fixed pseudo-random bytes every stream byte is compared with, by stream offset.
typedef struct {
  unsigned char *bytes;
} pattern_t;

void pattern_make(pattern_t *p);
const unsigned char *pat(const pattern_t *p, uint64_t offset);
// The first offset in [offset, offset + n) whose byte differs from the pattern, or -1.
int64_t pattern_check(const pattern_t *p, const unsigned char *buf, size_t n, uint64_t offset);

// 0 when all n bytes moved, 1 on EOF before that, -1 on an error (errno set).
int read_full(int fd, void *buf, size_t n);
int write_full(int fd, const void *buf, size_t n);
// Blocking, no Nagle, every wait bounded.
void stream_socket(int fd);

// ------------------------------------------------------------------------------ modes

__attribute__((noreturn)) void serve(const bench_opts_t *o); // bench_serve.c
int run(const bench_opts_t *o);                               // bench_run.c
int stream(const bench_opts_t *o);                            // bench_stream.c

#endif
