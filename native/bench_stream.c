// sluice-bench stream: one long connection, per write size "up" (the client writes) and
// "down" (the server writes) in CHUNK requests, then PING_BATCH round trips; every byte
// checked against the pattern; one JSON line of bytes, seconds and CPU time per phase.
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"
#include "sockaddr.h"

static void die(const char *what) { bench_die(what); }

typedef struct {
  uint32_t write;
  uint64_t bytes, ns, cpu_ns, kthread_ns; // cpu_ns includes kthread_ns
  int64_t bad;
} phase_t;

// The connection and what every phase adds to it.
typedef struct {
  const bench_opts_t *o;
  int fd;
  pattern_t pattern;
  unsigned char *rbuf;
  uint64_t sent, received; // every byte of the connection, both ways
  uint64_t up_off, down_off, ping_off;
  int timed; // set while measure() is in its timed part: a chunk keeps samples only then
  samples_t rtt;
  char error[200];
} stream_ctx_t;

static uint64_t cpu_both(const stream_ctx_t *c) { return cpu_ns(0) + (c->o->server_pid ? cpu_ns(c->o->server_pid) : 0); }

static int fail_io(stream_ctx_t *c, const char *what, int r) {
  if (!c->error[0]) snprintf(c->error, sizeof c->error, "%s: %s", what, r > 0 ? "connection closed" : strerror(errno));
  return -1;
}

static int send_all(stream_ctx_t *c, const void *buf, size_t n, const char *what) {
  if (write_full(c->fd, buf, n) < 0) return fail_io(c, what, -1);
  c->sent += n;
  return 0;
}

static int recv_all(stream_ctx_t *c, void *buf, size_t n, const char *what) {
  int r = read_full(c->fd, buf, n);
  if (r != 0) return fail_io(c, what, r);
  c->received += n;
  return 0;
}

typedef int (*chunk_fn)(stream_ctx_t *c, uint32_t size, phase_t *p);

// Chunks for warmup_ms untimed, then for duration_ms timed; always whole chunks. CPU
// accounting of the timed window: processes, then the pinned CPU's kernel threads.
static int measure(stream_ctx_t *c, chunk_fn fn, uint32_t size, phase_t *p) {
  uint64_t warmup_ns = (uint64_t)c->o->warmup_ms * 1000000u, duration_ns = (uint64_t)c->o->duration_ms * 1000000u;
  memset(p, 0, sizeof *p);
  p->write = size, p->bad = -1;
  phase_t scratch = *p;
  kthreads_t k0, k1;
  uint64_t start = now_ns(), t0 = 0, cpu0 = 0;
  int measuring = 0;
  for (;;) {
    uint64_t t = now_ns();
    if (!measuring && t - start >= warmup_ns) {
      kthreads_read(&k0, c->o->cpu);
      cpu0 = cpu_both(c);
      measuring = 1, t = t0 = now_ns();
    }
    if (measuring && t - t0 >= duration_ns) break;
    c->timed = measuring;
    if (fn(c, size, measuring ? p : &scratch) < 0) return -1;
    if (scratch.bad >= 0 && p->bad < 0) p->bad = scratch.bad;
  }
  p->ns = now_ns() - t0;
  p->cpu_ns = cpu_both(c) - cpu0;
  kthreads_read(&k1, c->o->cpu);
  p->kthread_ns = kthreads_since(&k0, &k1);
  p->cpu_ns += p->kthread_ns;
  return 0;
}

static int up_chunk(stream_ctx_t *c, uint32_t size, phase_t *p) {
  req_t q = {.magic = STREAM_MAGIC, .op = OP_UP, .size = size, .offset = c->up_off, .bytes = CHUNK};
  if (send_all(c, &q, sizeof q, "up request") < 0) return -1;
  for (uint64_t sent = 0; sent < CHUNK; sent += size)
    if (send_all(c, pat(&c->pattern, c->up_off + sent), size, "up write") < 0) return -1;
  ack_t a;
  if (recv_all(c, &a, sizeof a, "up ack") < 0) return -1;
  if (a.got != CHUNK) return fail_io(c, "up ack: wrong byte count", 1);
  if (a.bad >= 0 && p->bad < 0) p->bad = a.bad;
  c->up_off += CHUNK, p->bytes += CHUNK;
  return 0;
}

static int down_chunk(stream_ctx_t *c, uint32_t size, phase_t *p) {
  req_t q = {.magic = STREAM_MAGIC, .op = OP_DOWN, .size = size, .offset = c->down_off, .bytes = CHUNK};
  if (send_all(c, &q, sizeof q, "down request") < 0) return -1;
  for (uint64_t got = 0; got < CHUNK;) {
    size_t want = CHUNK - got < READ_SIZE ? (size_t)(CHUNK - got) : READ_SIZE;
    ssize_t r = read(c->fd, c->rbuf, want);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return fail_io(c, "down read", r == 0 ? 1 : -1);
    if (p->bad < 0) p->bad = pattern_check(&c->pattern, c->rbuf, (size_t)r, c->down_off + got);
    got += (uint64_t)r, c->received += (uint64_t)r;
  }
  c->down_off += CHUNK, p->bytes += CHUNK;
  return 0;
}

// PING_BATCH round trips; the request rides with the first message, one write.
static int ping_batch(stream_ctx_t *c, uint32_t size, phase_t *p) {
  unsigned char msg[sizeof(req_t) + 4096];
  req_t q = {.magic = STREAM_MAGIC, .op = OP_PING, .size = size, .count = PING_BATCH};
  memcpy(msg, &q, sizeof q);
  for (uint32_t i = 0; i < PING_BATCH; i++) {
    const unsigned char *out = pat(&c->pattern, c->ping_off);
    uint64_t t = now_ns();
    if (i == 0) {
      memcpy(msg + sizeof q, out, size);
      if (send_all(c, msg, sizeof q + size, "ping write") < 0) return -1;
    } else if (send_all(c, out, size, "ping write") < 0) {
      return -1;
    }
    if (recv_all(c, c->rbuf, size, "ping read") < 0) return -1;
    uint64_t dt = now_ns() - t;
    if (p->bad < 0) p->bad = pattern_check(&c->pattern, c->rbuf, size, c->ping_off);
    if (c->timed) push(&c->rtt, dt);
    c->ping_off += size, p->bytes += 1; // bytes counts round trips here
  }
  return 0;
}

static void print_phases(const char *name, const phase_t *ps, int n) {
  printf("\"%s\":[", name);
  for (int i = 0; i < n; i++)
    printf("%s{\"write\":%u,\"bytes\":%llu,\"seconds\":%.6f,\"cpuNs\":%llu,\"kthreadNs\":%llu,\"bad\":%lld}", i ? "," : "",
           ps[i].write, (unsigned long long)ps[i].bytes, (double)ps[i].ns / 1e9, (unsigned long long)ps[i].cpu_ns,
           (unsigned long long)ps[i].kthread_ns, (long long)ps[i].bad);
  printf("],");
}

// The reply line, as in `run`: which listener and which original destination.
static int read_greeting(stream_ctx_t *c, char *greeting, size_t size) {
  for (size_t n = 0; n < size - 1;) {
    ssize_t r = read(c->fd, greeting + n, 1);
    if (r <= 0) return fail_io(c, "reading the reply line", r == 0 ? 1 : -1);
    c->received++;
    if (greeting[n] == '\n') {
      greeting[n] = 0;
      break;
    }
    greeting[++n] = 0;
  }
  return 0;
}

int stream(const bench_opts_t *o) {
  ss_t sa;
  if (parse_addr(o->dst, &sa, 1) < 0) {
    fprintf(stderr, "sluice-bench: bad --dst %s (IP:PORT or [IP6]:PORT)\n", o->dst);
    return 2;
  }
  int sizes[MAX_PORTS];
  int nsizes = parse_ports(o->writes, sizes, MAX_PORTS);
  for (int i = 0; i < nsizes; i++)
    if (sizes[i] <= 0 || (uint32_t)sizes[i] > MAX_IO || CHUNK % (uint32_t)sizes[i]) {
      fprintf(stderr, "sluice-bench stream: write sizes must divide %u and be at most %u\n", CHUNK, MAX_IO);
      return 2;
    }
  if (o->ping_size <= 0 || o->ping_size > 4096) {
    fprintf(stderr, "sluice-bench stream: --ping-size must be 1..4096\n");
    return 2;
  }
  stream_ctx_t *c = calloc(1, sizeof *c);
  if (!c) die("calloc");
  c->o = o;
  pattern_make(&c->pattern);
  if (!(c->rbuf = malloc(MAX_IO))) die("malloc");
  phase_t up[MAX_PORTS], down[MAX_PORTS], ping;
  memset(&ping, 0, sizeof ping);
  int nup = 0, ndown = 0, mismatch = 0;
  char greeting[160] = "";

  c->fd = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (c->fd < 0) die("socket");
  stream_socket(c->fd);
  if (connect(c->fd, (void *)&sa, salen(sa.ss_family)) < 0) {
    fail_io(c, "connect", -1);
    goto out;
  }
  if (read_greeting(c, greeting, sizeof greeting) < 0) goto out;
  if (o->expect && strcmp(greeting, o->expect) != 0) {
    mismatch = 1;
    goto out;
  }
  for (int i = 0; i < nsizes; i++) {
    if (measure(c, up_chunk, (uint32_t)sizes[i], &up[nup]) < 0) goto out;
    nup++;
    if (measure(c, down_chunk, (uint32_t)sizes[i], &down[ndown]) < 0) goto out;
    ndown++;
  }
  // Round trips: latency samples come from the timed batches only (see `timed`).
  if (measure(c, ping_batch, (uint32_t)o->ping_size, &ping) < 0) goto out;
  {
    req_t end = {.magic = STREAM_MAGIC, .op = OP_END, .size = 1};
    send_all(c, &end, sizeof end, "end request");
  }
out:
  close(c->fd);
  sort_samples(&c->rtt);
  int bad = mismatch || c->error[0] || ping.bad >= 0;
  for (int i = 0; i < nup; i++) bad |= up[i].bad >= 0;
  for (int i = 0; i < ndown; i++) bad |= down[i].bad >= 0;
  printf("{\"reply\":\"%s\",\"mismatch\":%s,\"error\":\"%s\",\"bytesSent\":%llu,\"bytesReceived\":%llu,", greeting,
         mismatch ? "true" : "false", c->error, (unsigned long long)c->sent, (unsigned long long)c->received);
  print_phases("up", up, nup);
  print_phases("down", down, ndown);
  printf("\"ping\":{\"size\":%d,\"roundTrips\":%llu,\"seconds\":%.6f,\"cpuNs\":%llu,\"kthreadNs\":%llu,\"bad\":%lld,"
         "\"us\":{\"p50\":%.2f,\"p99\":%.2f,\"mean\":%.2f}}}\n",
         o->ping_size, (unsigned long long)ping.bytes, (double)ping.ns / 1e9, (unsigned long long)ping.cpu_ns,
         (unsigned long long)ping.kthread_ns, (long long)ping.bad, pct(&c->rtt, 50), pct(&c->rtt, 99), mean_us(&c->rtt));
  return bad ? 1 : 0;
}
