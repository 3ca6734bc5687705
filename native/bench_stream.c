// sluice-bench stream: one long connection, the data path between the app and its
// proxy. Per write size "up" (the client writes) and "down" (the server writes), as
// 4 MiB chunks, then small request/response round trips; every byte is checked against
// the pattern at its stream offset, so lost, duplicated or reordered bytes are reported,
// never timed.
#define _GNU_SOURCE
#include <errno.h>

#include "bench.h"

typedef struct {
  uint32_t write;
  uint64_t bytes, ns, cpu_ns, kthread_ns; // cpu_ns includes kthread_ns
  int64_t bad;
} phase_t;

// One stream: the connection, what it carried, and the round-trip samples.
typedef struct {
  const stream_opts_t *o;
  int fd;
  uint64_t sent, received; // every byte of the connection, both ways
  uint64_t up_off, down_off, ping_off;
  char error[200];
  unsigned char *rbuf; // MAX_IO bytes
  unsigned char msg[sizeof(req_t) + 4096];
  samples_t rtt;
  int timed; // set while measure() is in its timed part: a chunk keeps samples only then
  kthreads_t k_start, k_end;
} stream_t;

typedef int (*chunk_fn)(stream_t *st, uint32_t size, phase_t *p);

static uint64_t cpu_both(const stream_t *st) { return cpu_ns(0) + (st->o->server_pid ? cpu_ns(st->o->server_pid) : 0); }

// CPU accounting of a timed window: processes, then the pinned CPU's kernel threads.
static void window_start(stream_t *st, uint64_t *cpu0) {
  kthreads_read(&st->k_start, st->o->pinned_cpu);
  *cpu0 = cpu_both(st);
}

static void window_end(stream_t *st, phase_t *p, uint64_t cpu0) {
  p->cpu_ns = cpu_both(st) - cpu0;
  kthreads_read(&st->k_end, st->o->pinned_cpu);
  p->kthread_ns = kthreads_since(&st->k_start, &st->k_end);
  p->cpu_ns += p->kthread_ns;
}

static int fail_io(stream_t *st, const char *what, int r) {
  if (!st->error[0]) snprintf(st->error, sizeof st->error, "%s: %s", what, r > 0 ? "connection closed" : strerror(errno));
  return -1;
}

static int send_all(stream_t *st, const void *buf, size_t n, const char *what) {
  if (write_full(st->fd, buf, n) < 0) return fail_io(st, what, -1);
  st->sent += n;
  return 0;
}

static int recv_all(stream_t *st, void *buf, size_t n, const char *what) {
  int r = read_full(st->fd, buf, n);
  if (r != 0) return fail_io(st, what, r);
  st->received += n;
  return 0;
}

// Chunks for warmup_ms untimed, then for duration_ms timed; always whole chunks.
static int measure(stream_t *st, chunk_fn fn, uint32_t size, phase_t *p) {
  memset(p, 0, sizeof *p);
  p->write = size, p->bad = -1;
  phase_t scratch = *p;
  uint64_t start = now_ns(), t0 = 0, cpu0 = 0;
  int measuring = 0;
  for (;;) {
    uint64_t t = now_ns();
    if (!measuring && t - start >= (uint64_t)st->o->warmup_ms * 1000000u) {
      window_start(st, &cpu0);
      measuring = 1, t = t0 = now_ns();
    }
    if (measuring && t - t0 >= (uint64_t)st->o->duration_ms * 1000000u) break;
    st->timed = measuring;
    if (fn(st, size, measuring ? p : &scratch) < 0) return -1;
    if (scratch.bad >= 0 && p->bad < 0) p->bad = scratch.bad;
  }
  p->ns = now_ns() - t0;
  window_end(st, p, cpu0);
  return 0;
}

static int up_chunk(stream_t *st, uint32_t size, phase_t *p) {
  req_t q = {.magic = STREAM_MAGIC, .op = OP_UP, .size = size, .offset = st->up_off, .bytes = CHUNK};
  if (send_all(st, &q, sizeof q, "up request") < 0) return -1;
  for (uint64_t sent = 0; sent < CHUNK; sent += size)
    if (send_all(st, pat(st->up_off + sent), size, "up write") < 0) return -1;
  ack_t a;
  if (recv_all(st, &a, sizeof a, "up ack") < 0) return -1;
  if (a.got != CHUNK) return fail_io(st, "up ack: wrong byte count", 1);
  if (a.bad >= 0 && p->bad < 0) p->bad = a.bad;
  st->up_off += CHUNK, p->bytes += CHUNK;
  return 0;
}

static int down_chunk(stream_t *st, uint32_t size, phase_t *p) {
  req_t q = {.magic = STREAM_MAGIC, .op = OP_DOWN, .size = size, .offset = st->down_off, .bytes = CHUNK};
  if (send_all(st, &q, sizeof q, "down request") < 0) return -1;
  for (uint64_t got = 0; got < CHUNK;) {
    size_t want = CHUNK - got < READ_SIZE ? (size_t)(CHUNK - got) : READ_SIZE;
    ssize_t r = read(st->fd, st->rbuf, want);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return fail_io(st, "down read", r == 0 ? 1 : -1);
    if (p->bad < 0) p->bad = check(st->rbuf, (size_t)r, st->down_off + got);
    got += (uint64_t)r, st->received += (uint64_t)r;
  }
  st->down_off += CHUNK, p->bytes += CHUNK;
  return 0;
}

// PING_BATCH round trips; the request rides with the first message, one write.
static int ping_batch(stream_t *st, uint32_t size, phase_t *p) {
  req_t q = {.magic = STREAM_MAGIC, .op = OP_PING, .size = size, .count = PING_BATCH};
  memcpy(st->msg, &q, sizeof q);
  for (uint32_t i = 0; i < PING_BATCH; i++) {
    const unsigned char *out = pat(st->ping_off);
    uint64_t t = now_ns();
    if (i == 0) {
      memcpy(st->msg + sizeof q, out, size);
      if (send_all(st, st->msg, sizeof q + size, "ping write") < 0) return -1;
    } else if (send_all(st, out, size, "ping write") < 0) {
      return -1;
    }
    if (recv_all(st, st->rbuf, size, "ping read") < 0) return -1;
    uint64_t dt = now_ns() - t;
    if (p->bad < 0) p->bad = check(st->rbuf, size, st->ping_off);
    if (st->timed) push(&st->rtt, dt);
    st->ping_off += size, p->bytes += 1; // bytes counts round trips here
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
static int read_greeting(stream_t *st, char *greeting, size_t size) {
  for (size_t n = 0; n < size - 1;) {
    ssize_t r = read(st->fd, greeting + n, 1);
    if (r <= 0) return fail_io(st, "reading the reply line", r == 0 ? 1 : -1);
    st->received++;
    if (greeting[n] == '\n') {
      greeting[n] = 0;
      break;
    }
    greeting[++n] = 0;
  }
  return 0;
}

static int check_sizes(const stream_opts_t *o, int *sizes, int *nsizes) {
  *nsizes = parse_ports(o->writes, sizes, MAX_PORTS);
  for (int i = 0; i < *nsizes; i++)
    if (sizes[i] <= 0 || (uint32_t)sizes[i] > MAX_IO || CHUNK % (uint32_t)sizes[i]) {
      fprintf(stderr, "sluice-bench stream: write sizes must divide %u and be at most %u\n", CHUNK, MAX_IO);
      return -1;
    }
  if (o->ping_size <= 0 || o->ping_size > 4096) {
    fprintf(stderr, "sluice-bench stream: --ping-size must be 1..4096\n");
    return -1;
  }
  return 0;
}

int bench_stream(const stream_opts_t *o) {
  static stream_t stream; // one per process
  stream_t *st = &stream;
  st->o = o;
  ss_t sa;
  if (parse_addr(o->dst, &sa, 1) < 0) {
    fprintf(stderr, "sluice-bench: bad --dst %s (IP:PORT or [IP6]:PORT)\n", o->dst);
    return 2;
  }
  int sizes[MAX_PORTS], nsizes;
  if (check_sizes(o, sizes, &nsizes) < 0) return 2;
  make_pattern();
  if (!(st->rbuf = malloc(MAX_IO))) die("malloc");
  phase_t up[MAX_PORTS], down[MAX_PORTS], ping;
  memset(&ping, 0, sizeof ping);
  int nup = 0, ndown = 0, mismatch = 0;
  char greeting[160] = "";

  st->fd = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (st->fd < 0) die("socket");
  stream_socket(st->fd);
  if (connect(st->fd, (void *)&sa, salen(sa.ss_family)) < 0) {
    fail_io(st, "connect", -1);
    goto out;
  }
  if (read_greeting(st, greeting, sizeof greeting) < 0) goto out;
  if (o->expect && strcmp(greeting, o->expect) != 0) {
    mismatch = 1;
    goto out;
  }
  for (int i = 0; i < nsizes; i++) {
    if (measure(st, up_chunk, (uint32_t)sizes[i], &up[nup]) < 0) goto out;
    nup++;
    if (measure(st, down_chunk, (uint32_t)sizes[i], &down[ndown]) < 0) goto out;
    ndown++;
  }
  // Round trips: latency samples come from the timed batches only (see `timed`).
  if (measure(st, ping_batch, (uint32_t)o->ping_size, &ping) < 0) goto out;
  {
    req_t end = {.magic = STREAM_MAGIC, .op = OP_END, .size = 1};
    send_all(st, &end, sizeof end, "end request");
  }
out:
  close(st->fd);
  sort_samples(&st->rtt);
  int bad = mismatch || st->error[0] || ping.bad >= 0;
  for (int i = 0; i < nup; i++) bad |= up[i].bad >= 0;
  for (int i = 0; i < ndown; i++) bad |= down[i].bad >= 0;
  printf("{\"reply\":\"%s\",\"mismatch\":%s,\"error\":\"%s\",\"bytesSent\":%llu,\"bytesReceived\":%llu,", greeting,
         mismatch ? "true" : "false", st->error, (unsigned long long)st->sent, (unsigned long long)st->received);
  print_phases("up", up, nup);
  print_phases("down", down, ndown);
  printf("\"ping\":{\"size\":%d,\"roundTrips\":%llu,\"seconds\":%.6f,\"cpuNs\":%llu,\"kthreadNs\":%llu,\"bad\":%lld,"
         "\"us\":{\"p50\":%.2f,\"p99\":%.2f,\"mean\":%.2f}}}\n",
         o->ping_size, (unsigned long long)ping.bytes, (double)ping.ns / 1e9, (unsigned long long)ping.cpu_ns,
         (unsigned long long)ping.kthread_ns, (long long)ping.bad, pct(&st->rtt, 50), pct(&st->rtt, 99), mean_us(&st->rtt));
  return bad ? 1 : 0;
}
