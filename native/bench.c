// sluice-bench: the load generator behind `npm run bench`.
//
//   sluice-bench serve --tcp PORTS [--stream-ports PORTS] [--netns PATH] [--cpu N]
//   sluice-bench run --dst IP:PORT [--netns PATH] [--cpu N] [--uid N] [--concurrency N]
//                    [--warmup-ms N] [--duration-ms N] [--expect TEXT] [--close rst|fin]
//                    [--server-pid PID] [--send TEXT] [--expect-in TEXT] [--cgroup-cpu DIR]
//                    [--count N]
//   sluice-bench stream --dst IP:PORT [--netns PATH] [--cpu N] [--uid N] [--expect TEXT]
//                    [--writes 4096,65536] [--ping-size 64] [--warmup-ms N]
//                    [--duration-ms N] [--server-pid PID]
//
// The server plays the proxy: for every connection it asks SO_ORIGINAL_DST exactly as a
// proxy would (falling back to the socket's own address when nothing answers), writes
// "<listener port> <original destination>\n" and closes. The client opens connections
// back to back (N in flight), reads the reply, checks it against --expect so a run that
// was not captured as intended cannot pass for a fast one, and prints one JSON line:
// connections per second, connect latency (connect() to writable) and cycle latency
// (connect() to the reply read and the socket closed), p50/p99 in microseconds. With
// --server-pid it also reports the CPU time client and server used per connection
// (/proc/PID/schedstat), plus, when pinned with --cpu, the time of that CPU's kernel
// threads (ksoftirqd/N, kworker/N:*), where deferred softirqs and work items run: unlike
// the rate, time that other jobs take from the CPU does not count in it.
//
// --send TEXT makes run a request client for a real proxy (the bench's HAProxy mesh):
// each connection writes TEXT once connected and reads the reply to EOF (the proxy
// closes), and --expect-in TEXT must occur somewhere in that reply (an HTTP response
// does not fit --expect's one line). --cgroup-cpu DIR takes the CPU time from DIR's
// cpu.stat (every process of that cgroup: client, proxies and apps) instead of the
// client's and --server-pid's.
//
// --cpu pins the process. With the client and the server on the same CPU, all the work
// of a connection (both processes, and the softirqs they raise) runs there, so the rate
// measures CPU time per connection instead of cross-CPU wake-up latency, and a second
// core's noise (other jobs) stays out of it.
//
// --close rst (default) ends each connection with an RST from the client once the reply
// is in: no TIME_WAIT anywhere, so the ephemeral port range and the conntrack table stay
// bounded however long the run. --close fin reads to EOF and closes normally; the
// server, which closed first, keeps each tuple in TIME_WAIT.
//
// --count N opens exactly N connections and stops once the last one is done (the fault
// suite's leak test: every connection accounted for); --duration-ms is then a time limit,
// and "seconds" the time the N took.
//
// stream measures one long connection instead: the data path between the app and its
// proxy. The server treats a connection whose original destination port is one of
// --stream-ports as a stream session: it writes the same reply line, then serves
// requests on that connection with blocking I/O until the client ends it. The client, per
// write size: "up" (app to proxy, the client writes) and "down" (the server writes), each
// as 4 MiB chunks for --duration-ms after --warmup-ms, then 64-byte (--ping-size)
// request/response round trips. Every byte is compared with a fixed pseudo-random
// pattern at its stream offset (memcmp, the same cost for every capture), so lost,
// duplicated or reordered bytes are reported, never timed. It prints one JSON line: bytes,
// seconds and CPU time (as for run) per phase, round-trip percentiles, and every byte the
// socket sent and received (what an sk_msg redirect counter should have seen).
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sockaddr.h"

#define SO_ORIGINAL_DST 80 // <linux/netfilter_ipv4.h>; the same value for SOL_IPV6
#define MAX_PORTS 16
#define MAX_CONCURRENCY 1024

static void die(const char *what) {
  fprintf(stderr, "sluice-bench: %s: %s\n", what, strerror(errno));
  exit(2);
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

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

#define MAX_IO (1u << 20)     // the largest write size
#define READ_SIZE (256u << 10) // what both ends ask read() for
#define CHUNK (4u << 20)       // bytes per up/down request: a multiple of every write size
#define PING_BATCH 1000u
// Not a multiple of any write size, so a chunk delivered at the wrong offset does not
// match by accident.
#define PATTERN_PERIOD ((1u << 20) + 8u * 131u)

static unsigned char *pattern; // PATTERN_PERIOD + MAX_IO bytes: every slice is contiguous

static void make_pattern(void) {
  pattern = malloc(PATTERN_PERIOD + MAX_IO);
  if (!pattern) die("malloc");
  uint64_t x = 0x9E3779B97F4A7C15ull;
  for (size_t i = 0; i < PATTERN_PERIOD; i += 8) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17; // xorshift64
    memcpy(pattern + i, &x, 8);
  }
  memcpy(pattern + PATTERN_PERIOD, pattern, MAX_IO);
}

static const unsigned char *pat(uint64_t offset) { return pattern + offset % PATTERN_PERIOD; }

// The first offset in [offset, offset + n) whose byte differs from the pattern, or -1.
static int64_t check(const unsigned char *buf, size_t n, uint64_t offset) {
  const unsigned char *want = pat(offset);
  if (memcmp(buf, want, n) == 0) return -1;
  size_t i = 0;
  while (buf[i] == want[i]) i++;
  return (int64_t)(offset + i);
}

// 0 when all n bytes moved, 1 on EOF before that, -1 on an error (errno set).
static int read_full(int fd, void *buf, size_t n) {
  for (size_t got = 0; got < n;) {
    ssize_t r = read(fd, (char *)buf + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -1;
    if (r == 0) return 1;
    got += (size_t)r;
  }
  return 0;
}

static int write_full(int fd, const void *buf, size_t n) {
  for (size_t done = 0; done < n;) {
    ssize_t r = write(fd, (const char *)buf + done, n - done);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -1;
    done += (size_t)r;
  }
  return 0;
}

// Blocking, no Nagle (as Envoy sets its sockets), and a bound on every wait so a lost
// wake-up or a vanished peer ends the session instead of hanging the bench.
static void stream_socket(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct timeval tv = {.tv_sec = 10};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

// ---------------------------------------------------------------------------- serve

typedef struct {
  int fd, port;
} listener_t;

static int make_listener(int family, int port) {
  int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket");
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  ss_t sa;
  memset(&sa, 0, sizeof sa);
  sa.ss_family = (sa_family_t)family;
  if (family == AF_INET6) {
    setsockopt(fd, SOL_IPV6, IPV6_V6ONLY, &one, sizeof one);
    ((struct sockaddr_in6 *)&sa)->sin6_port = htons((uint16_t)port);
  } else {
    ((struct sockaddr_in *)&sa)->sin_port = htons((uint16_t)port);
  }
  if (bind(fd, (void *)&sa, salen(family)) < 0) {
    fprintf(stderr, "sluice-bench: bind tcp/%d: %s\n", port, strerror(errno));
    exit(2);
  }
  if (listen(fd, 4096) < 0) die("listen");
  return fd;
}

static int stream_ports[MAX_PORTS], n_stream_ports;

static int port_of(const ss_t *sa) {
  return ntohs(sa->ss_family == AF_INET ? ((const struct sockaddr_in *)sa)->sin_port : ((const struct sockaddr_in6 *)sa)->sin6_port);
}

// The proxy end of a stream connection, inline: the bench runs one thing at a time, and
// /proc/PID/schedstat (the CPU figure) counts this thread only.
static void session(int fd) {
  static unsigned char *buf;
  if (!buf && !(buf = malloc(MAX_IO))) return;
  stream_socket(fd);
  for (;;) {
    req_t q;
    if (read_full(fd, &q, sizeof q) != 0 || q.magic != STREAM_MAGIC || q.size == 0 || q.size > MAX_IO) return;
    if (q.op == OP_UP) {
      ack_t a = {.got = 0, .bad = -1};
      while (a.got < q.bytes) {
        size_t want = q.bytes - a.got < READ_SIZE ? (size_t)(q.bytes - a.got) : READ_SIZE;
        ssize_t r = read(fd, buf, want);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return;
        if (a.bad < 0) a.bad = check(buf, (size_t)r, q.offset + a.got);
        a.got += (uint64_t)r;
      }
      if (write_full(fd, &a, sizeof a) < 0) return;
    } else if (q.op == OP_DOWN) {
      for (uint64_t sent = 0; sent < q.bytes;) {
        size_t n = q.bytes - sent < q.size ? (size_t)(q.bytes - sent) : q.size;
        if (write_full(fd, pat(q.offset + sent), n) < 0) return;
        sent += n;
      }
    } else if (q.op == OP_PING) {
      for (uint32_t i = 0; i < q.count; i++)
        if (read_full(fd, buf, q.size) != 0 || write_full(fd, buf, q.size) < 0) return;
    } else {
      return;
    }
  }
}

// What a proxy does with a new connection before it can route it: ask where it was going.
static void answer(int fd, int port) {
  ss_t od;
  socklen_t ol = sizeof od;
  memset(&od, 0, sizeof od);
  ss_t local;
  socklen_t ll = sizeof local;
  getsockname(fd, (void *)&local, &ll);
  int v4 = local.ss_family == AF_INET;
  if (getsockopt(fd, v4 ? SOL_IP : SOL_IPV6, SO_ORIGINAL_DST, &od, &ol) < 0) od = local;
  char out[128], a[80];
  int n = snprintf(out, sizeof out, "%d %s\n", port, fmt(&od, a, sizeof a));
  // Tens of bytes into an empty send buffer: never short on a fresh socket.
  if (write(fd, out, (size_t)n) < 0) { /* the client went away; it counts the error */ }
  for (int i = 0; i < n_stream_ports; i++)
    if (port_of(&od) == stream_ports[i]) {
      session(fd);
      break;
    }
  close(fd);
}

static int parse_ports(const char *text, int *out, int max) {
  int n = 0;
  for (const char *s = text; s && *s && n < max;) {
    char *end;
    out[n++] = (int)strtol(s, &end, 10);
    s = *end ? end + 1 : end;
  }
  return n;
}

__attribute__((noreturn)) static void serve(const char *ports) {
  static listener_t ls[2 * MAX_PORTS];
  int nl = 0;
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) die("epoll_create1");
  for (const char *s = ports; s && *s && nl < 2 * MAX_PORTS;) {
    char *end;
    int port = (int)strtol(s, &end, 10);
    for (int f = 0; f < 2; f++) {
      listener_t *l = &ls[nl++];
      l->port = port, l->fd = make_listener(f ? AF_INET6 : AF_INET, port);
      struct epoll_event ev = {.events = EPOLLIN, .data.ptr = l};
      if (epoll_ctl(ep, EPOLL_CTL_ADD, l->fd, &ev) < 0) die("epoll_ctl");
    }
    s = *end ? end + 1 : end;
  }
  printf("ready\n");
  fflush(stdout);
  for (;;) {
    struct epoll_event evs[32];
    int n = epoll_wait(ep, evs, 32, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) die("epoll_wait");
    for (int i = 0; i < n; i++) {
      listener_t *l = evs[i].data.ptr;
      int fd;
      while ((fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC)) >= 0) answer(fd, l->port);
    }
  }
}

// ------------------------------------------------------------------------------ run

enum { IDLE, CONNECTING, READING };

typedef struct {
  int fd, state;
  uint64_t t0, t_est;
  size_t len;
  char buf[2048]; // an HTTP response with the mesh's hop headers fits
} slot_t;

typedef struct {
  uint64_t *v;
  size_t n, cap;
} samples_t;

static void push(samples_t *s, uint64_t x) {
  if (s->n == s->cap) {
    s->cap = s->cap ? 2 * s->cap : 65536;
    s->v = realloc(s->v, s->cap * sizeof *s->v);
    if (!s->v) die("realloc");
  }
  s->v[s->n++] = x;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

// Nearest-rank percentile, in microseconds.
static double pct(samples_t *s, double p) {
  if (s->n == 0) return 0;
  size_t i = (size_t)(p / 100.0 * (double)s->n);
  if (i >= s->n) i = s->n - 1;
  return (double)s->v[i] / 1000.0;
}

static double mean_us(const samples_t *s) {
  if (s->n == 0) return 0;
  double sum = 0;
  for (size_t i = 0; i < s->n; i++) sum += (double)s->v[i];
  return sum / (double)s->n / 1000.0;
}

// Nanoseconds a process has run (the softirqs it raised on its CPU included).
static uint64_t cpu_ns(int pid) {
  char path[64];
  unsigned long long ns = 0;
  if (pid > 0) snprintf(path, sizeof path, "/proc/%d/schedstat", pid);
  else snprintf(path, sizeof path, "/proc/self/schedstat");
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  if (fscanf(f, "%llu", &ns) != 1) ns = 0;
  fclose(f);
  return ns;
}

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

static int pinned_cpu = -1;

static void kthreads_read(kthreads_t *k) {
  k->n = 0;
  if (pinned_cpu < 0) return;
  char soft[32], work[32];
  snprintf(soft, sizeof soft, "ksoftirqd/%d", pinned_cpu);
  int wl = snprintf(work, sizeof work, "kworker/%d:", pinned_cpu);
  DIR *d = opendir("/proc");
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d)) && k->n < MAX_KTHREADS) {
    if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
    int pid = atoi(e->d_name);
    char path[64], comm[64] = "";
    snprintf(path, sizeof path, "/proc/%d/comm", pid);
    FILE *f = fopen(path, "r");
    if (!f) continue;
    if (!fgets(comm, sizeof comm, f)) comm[0] = 0;
    fclose(f);
    comm[strcspn(comm, "\n")] = 0;
    if (strcmp(comm, soft) != 0 && strncmp(comm, work, (size_t)wl) != 0) continue;
    k->t[k->n].pid = pid, k->t[k->n++].ns = cpu_ns(pid);
  }
  closedir(d);
}

// What the threads of `now` ran since `then`; one that appeared meanwhile ran only since.
static uint64_t kthreads_since(const kthreads_t *then, const kthreads_t *now) {
  uint64_t sum = 0;
  for (int i = 0; i < now->n; i++) {
    uint64_t before = 0;
    for (int j = 0; j < then->n; j++)
      if (then->t[j].pid == now->t[i].pid) before = then->t[j].ns;
    if (now->t[i].ns > before) sum += now->t[i].ns - before;
  }
  return sum;
}

static struct {
  ss_t dst;
  int server_pid;
  const char *cgroup_cpu, *send, *expect_in;
  int cpu_started;
  uint64_t cpu0;
  kthreads_t k0;
  const char *expect;
  int close_rst;
  unsigned long count, started, inflight; // --count: connections to open, opened, open now
  int ep;
  uint64_t measure_from, measure_to;
  samples_t connect, cycle;
  unsigned long done, errors, mismatches, warm;
  char first_reply[160], first_error[160];
} R;

// usage_usec of a cgroup's cpu.stat, in ns (0 when unreadable).
static uint64_t cgroup_ns(const char *dir) {
  char path[512], line[128];
  snprintf(path, sizeof path, "%s/cpu.stat", dir);
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  unsigned long long us = 0;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "usage_usec %llu", &us) == 1) break;
  fclose(f);
  return (uint64_t)us * 1000u;
}

// The processes' CPU time: the cgroup's when asked, else the client's and the server's.
static uint64_t procs_ns(void) {
  return R.cgroup_cpu ? cgroup_ns(R.cgroup_cpu) : cpu_ns(0) + (R.server_pid ? cpu_ns(R.server_pid) : 0);
}

// A reply or error as a JSON string body: quotes, backslashes and control bytes escaped.
static const char *json_text(const char *in) {
  static char out[2][4 * 200];
  static int which;
  char *o = out[which ^= 1];
  size_t n = 0;
  for (const unsigned char *c = (const unsigned char *)in; *c && n < sizeof out[0] - 7; c++) {
    if (*c == '"' || *c == '\\') o[n++] = '\\', o[n++] = (char)*c;
    else if (*c < 0x20) n += (size_t)snprintf(o + n, 7, "\\u%04x", *c);
    else o[n++] = (char)*c;
  }
  o[n] = 0;
  return o;
}

static void note_error(const char *what, int err) {
  if (!R.first_error[0]) snprintf(R.first_error, sizeof R.first_error, "%s: %s", what, strerror(err));
}

static void start(slot_t *s) {
  if (R.count && R.started >= R.count) return; // stays idle
  R.started++;
  s->fd = socket(R.dst.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (s->fd < 0) die("socket");
  s->len = 0, s->t_est = 0, s->t0 = now_ns();
  if (connect(s->fd, (void *)&R.dst, salen(R.dst.ss_family)) < 0 && errno != EINPROGRESS) {
    // Counted like a failed handshake; the slot retries on the next turn of the loop.
    R.errors++, note_error("connect", errno);
    close(s->fd);
    s->state = IDLE;
    return;
  }
  s->state = CONNECTING;
  R.inflight++;
  // Edge-triggered: one registration serves the whole life of the connection.
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = s};
  if (epoll_ctl(R.ep, EPOLL_CTL_ADD, s->fd, &ev) < 0) die("epoll_ctl");
}

static void finish(slot_t *s, int ok) {
  uint64_t t = now_ns();
  if (R.close_rst) {
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  }
  close(s->fd);
  s->state = IDLE;
  R.inflight--;
  if (!ok) {
    R.errors++;
    return;
  }
  s->buf[s->len] = 0;
  if (R.expect_in && !strstr(s->buf, R.expect_in)) R.mismatches++;
  // A request's reply is kept from its end (an HTTP body says most); a line from its start.
  const char *shown = R.send && s->len >= sizeof R.first_reply ? s->buf + s->len - (sizeof R.first_reply - 1) : s->buf;
  if (!R.first_reply[0]) snprintf(R.first_reply, sizeof R.first_reply, "%.159s", shown);
  char *nl = strchr(s->buf, '\n');
  if (nl) *nl = 0;
  if (R.expect && strcmp(s->buf, R.expect) != 0) R.mismatches++;
  uint64_t end = now_ns();
  if (s->t0 >= R.measure_from && t < R.measure_to) {
    R.done++;
    push(&R.connect, s->t_est - s->t0);
    push(&R.cycle, end - s->t0);
  } else {
    R.warm++;
  }
}

static void on_event(slot_t *s, uint32_t events) {
  if (s->state == CONNECTING) {
    int err = 0;
    socklen_t el = sizeof err;
    getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &el);
    if (err) {
      note_error("connect", err);
      return finish(s, 0);
    }
    if (!(events & (EPOLLOUT | EPOLLIN))) return;
    s->t_est = now_ns();
    s->state = READING;
    // A request of tens of bytes into an empty send buffer: never short on a fresh socket.
    size_t n = R.send ? strlen(R.send) : 0;
    if (n && write(s->fd, R.send, n) != (ssize_t)n) {
      note_error("write", errno);
      return finish(s, 0);
    }
  }
  for (;;) {
    ssize_t r = read(s->fd, s->buf + s->len, sizeof s->buf - 1 - s->len);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && errno == EAGAIN) return; // edge-triggered: wait for the next edge
    if (r < 0) {
      note_error("read", errno);
      return finish(s, 0);
    }
    if (r == 0) {
      if (!memchr(s->buf, '\n', s->len)) {
        note_error("read: closed before a reply", ECONNRESET);
        return finish(s, 0);
      }
      return finish(s, 1);
    }
    s->len += (size_t)r;
    if (R.close_rst && !R.send && memchr(s->buf, '\n', s->len)) return finish(s, 1);
    if (s->len >= sizeof s->buf - 1) return finish(s, 1);
  }
}

static int run(const char *dst, int concurrency, int warmup_ms, int duration_ms) {
  if (parse_addr(dst, &R.dst, 1) < 0) {
    fprintf(stderr, "sluice-bench: bad --dst %s (IP:PORT or [IP6]:PORT)\n", dst);
    return 2;
  }
  if (concurrency < 1 || concurrency > MAX_CONCURRENCY) {
    fprintf(stderr, "sluice-bench: --concurrency must be 1..%d\n", MAX_CONCURRENCY);
    return 2;
  }
  R.ep = epoll_create1(EPOLL_CLOEXEC);
  if (R.ep < 0) die("epoll_create1");
  static slot_t slots[MAX_CONCURRENCY];
  uint64_t t_start = now_ns();
  R.measure_from = t_start + (uint64_t)warmup_ms * 1000000u;
  R.measure_to = R.measure_from + (uint64_t)duration_ms * 1000000u;
  for (int i = 0; i < concurrency; i++) start(&slots[i]);
  for (;;) {
    uint64_t t = now_ns();
    if (t >= R.measure_to) break;
    if (R.count && R.started >= R.count && R.inflight == 0) break;
    if (!R.cpu_started && t >= R.measure_from) {
      R.cpu_started = 1;
      kthreads_read(&R.k0); // first, so the client's own time leaves out the scan
      R.cpu0 = procs_ns();
    }
    // A slot whose connect failed at once is idle: retry it, unless nothing ever works.
    for (int i = 0; i < concurrency; i++)
      if (slots[i].state == IDLE) start(&slots[i]);
    if (R.errors > 1000 && R.done + R.warm == 0) break;
    struct epoll_event evs[64];
    int timeout = (int)((R.measure_to - t) / 1000000u) + 1;
    int n = epoll_wait(R.ep, evs, 64, timeout);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) die("epoll_wait");
    for (int i = 0; i < n; i++) {
      slot_t *s = evs[i].data.ptr;
      if (s->state != IDLE) on_event(s, evs[i].events);
      if (s->state == IDLE && now_ns() < R.measure_to) start(s);
    }
  }
  double cpu_us = -1, kthread_us = -1;
  if ((R.server_pid || R.cgroup_cpu) && R.cpu_started && R.done > 0) {
    uint64_t procs = procs_ns() - R.cpu0;
    static kthreads_t k1;
    kthreads_read(&k1);
    uint64_t kth = kthreads_since(&R.k0, &k1);
    cpu_us = (double)(procs + kth) / 1000.0 / (double)R.done;
    kthread_us = (double)kth / 1000.0 / (double)R.done;
  }
  // Connections still in flight at the end are neither counted nor errors.
  for (int i = 0; i < concurrency; i++)
    if (slots[i].state != IDLE) close(slots[i].fd);
  double secs = R.count ? (double)(now_ns() - R.measure_from) / 1e9 : (double)duration_ms / 1000.0;
  qsort(R.connect.v, R.connect.n, sizeof(uint64_t), cmp_u64);
  qsort(R.cycle.v, R.cycle.n, sizeof(uint64_t), cmp_u64);
  printf("{\"connections\":%lu,\"errors\":%lu,\"mismatches\":%lu,\"seconds\":%.3f,\"rate\":%.1f,"
         "\"connectUs\":{\"p50\":%.1f,\"p99\":%.1f,\"mean\":%.1f},"
         "\"cycleUs\":{\"p50\":%.1f,\"p99\":%.1f,\"mean\":%.1f},\"cpuUsPerConnection\":%.2f,"
         "\"kthreadUsPerConnection\":%.2f,\"firstReply\":\"%s\",\"firstError\":\"%s\"}\n",
         R.done, R.errors, R.mismatches, secs, (double)R.done / secs, pct(&R.connect, 50),
         pct(&R.connect, 99), mean_us(&R.connect), pct(&R.cycle, 50), pct(&R.cycle, 99),
         mean_us(&R.cycle), cpu_us, kthread_us, json_text(R.first_reply), json_text(R.first_error));
  return R.done > 0 && R.mismatches == 0 ? 0 : 1;
}

// --------------------------------------------------------------------------- stream

typedef struct {
  uint32_t write;
  uint64_t bytes, ns, cpu_ns, kthread_ns; // cpu_ns includes kthread_ns
  int64_t bad;
} phase_t;

static struct {
  int fd, server_pid;
  uint64_t sent, received; // every byte of the connection, both ways
  uint64_t up_off, down_off, ping_off;
  char error[200];
} S;

static uint64_t cpu_both(void) { return cpu_ns(0) + (S.server_pid ? cpu_ns(S.server_pid) : 0); }

static kthreads_t k_start, k_end;

// CPU accounting of a timed window: processes, then the pinned CPU's kernel threads.
static void window_start(uint64_t *cpu0) {
  kthreads_read(&k_start);
  *cpu0 = cpu_both();
}

static void window_end(phase_t *p, uint64_t cpu0) {
  p->cpu_ns = cpu_both() - cpu0;
  kthreads_read(&k_end);
  p->kthread_ns = kthreads_since(&k_start, &k_end);
  p->cpu_ns += p->kthread_ns;
}

static int fail_io(const char *what, int r) {
  if (!S.error[0]) snprintf(S.error, sizeof S.error, "%s: %s", what, r > 0 ? "connection closed" : strerror(errno));
  return -1;
}

static int send_all(const void *buf, size_t n, const char *what) {
  if (write_full(S.fd, buf, n) < 0) return fail_io(what, -1);
  S.sent += n;
  return 0;
}

static int recv_all(void *buf, size_t n, const char *what) {
  int r = read_full(S.fd, buf, n);
  if (r != 0) return fail_io(what, r);
  S.received += n;
  return 0;
}

// Chunks for warmup_ms untimed, then for duration_ms timed; always whole chunks.
typedef int (*chunk_fn)(uint32_t size, phase_t *p);

// Set while measure() is in its timed part: a chunk may keep samples only then.
static int timed;

static int measure(chunk_fn fn, uint32_t size, int warmup_ms, int duration_ms, phase_t *p) {
  memset(p, 0, sizeof *p);
  p->write = size, p->bad = -1;
  phase_t scratch = *p;
  uint64_t start = now_ns(), t0 = 0, cpu0 = 0;
  int measuring = 0;
  for (;;) {
    uint64_t t = now_ns();
    if (!measuring && t - start >= (uint64_t)warmup_ms * 1000000u) {
      window_start(&cpu0);
      measuring = 1, t = t0 = now_ns();
    }
    if (measuring && t - t0 >= (uint64_t)duration_ms * 1000000u) break;
    timed = measuring;
    if (fn(size, measuring ? p : &scratch) < 0) return -1;
    if (scratch.bad >= 0 && p->bad < 0) p->bad = scratch.bad;
  }
  p->ns = now_ns() - t0;
  window_end(p, cpu0);
  return 0;
}

static int up_chunk(uint32_t size, phase_t *p) {
  req_t q = {.magic = STREAM_MAGIC, .op = OP_UP, .size = size, .offset = S.up_off, .bytes = CHUNK};
  if (send_all(&q, sizeof q, "up request") < 0) return -1;
  for (uint64_t sent = 0; sent < CHUNK; sent += size)
    if (send_all(pat(S.up_off + sent), size, "up write") < 0) return -1;
  ack_t a;
  if (recv_all(&a, sizeof a, "up ack") < 0) return -1;
  if (a.got != CHUNK) return fail_io("up ack: wrong byte count", 1);
  if (a.bad >= 0 && p->bad < 0) p->bad = a.bad;
  S.up_off += CHUNK, p->bytes += CHUNK;
  return 0;
}

static unsigned char *rbuf;

static int down_chunk(uint32_t size, phase_t *p) {
  req_t q = {.magic = STREAM_MAGIC, .op = OP_DOWN, .size = size, .offset = S.down_off, .bytes = CHUNK};
  if (send_all(&q, sizeof q, "down request") < 0) return -1;
  for (uint64_t got = 0; got < CHUNK;) {
    size_t want = CHUNK - got < READ_SIZE ? (size_t)(CHUNK - got) : READ_SIZE;
    ssize_t r = read(S.fd, rbuf, want);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return fail_io("down read", r == 0 ? 1 : -1);
    if (p->bad < 0) p->bad = check(rbuf, (size_t)r, S.down_off + got);
    got += (uint64_t)r, S.received += (uint64_t)r;
  }
  S.down_off += CHUNK, p->bytes += CHUNK;
  return 0;
}

static samples_t rtt;

// PING_BATCH round trips; the request rides with the first message, one write.
static int ping_batch(uint32_t size, phase_t *p) {
  static unsigned char msg[sizeof(req_t) + 4096];
  req_t q = {.magic = STREAM_MAGIC, .op = OP_PING, .size = size, .count = PING_BATCH};
  memcpy(msg, &q, sizeof q);
  for (uint32_t i = 0; i < PING_BATCH; i++) {
    const unsigned char *out = pat(S.ping_off);
    uint64_t t = now_ns();
    if (i == 0) {
      memcpy(msg + sizeof q, out, size);
      if (send_all(msg, sizeof q + size, "ping write") < 0) return -1;
    } else if (send_all(out, size, "ping write") < 0) {
      return -1;
    }
    if (recv_all(rbuf, size, "ping read") < 0) return -1;
    uint64_t dt = now_ns() - t;
    if (p->bad < 0) p->bad = check(rbuf, size, S.ping_off);
    if (timed) push(&rtt, dt);
    S.ping_off += size, p->bytes += 1; // bytes counts round trips here
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

static int stream(const char *dst, const char *expect, const char *writes, int ping_size, int warmup_ms, int duration_ms) {
  ss_t sa;
  if (parse_addr(dst, &sa, 1) < 0) {
    fprintf(stderr, "sluice-bench: bad --dst %s (IP:PORT or [IP6]:PORT)\n", dst);
    return 2;
  }
  int sizes[MAX_PORTS];
  int nsizes = parse_ports(writes, sizes, MAX_PORTS);
  for (int i = 0; i < nsizes; i++)
    if (sizes[i] <= 0 || (uint32_t)sizes[i] > MAX_IO || CHUNK % (uint32_t)sizes[i]) {
      fprintf(stderr, "sluice-bench stream: write sizes must divide %u and be at most %u\n", CHUNK, MAX_IO);
      return 2;
    }
  if (ping_size <= 0 || ping_size > 4096) {
    fprintf(stderr, "sluice-bench stream: --ping-size must be 1..4096\n");
    return 2;
  }
  make_pattern();
  if (!(rbuf = malloc(MAX_IO))) die("malloc");
  phase_t up[MAX_PORTS], down[MAX_PORTS], ping;
  memset(&ping, 0, sizeof ping);
  int nup = 0, ndown = 0, mismatch = 0;
  char greeting[160] = "";

  S.fd = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (S.fd < 0) die("socket");
  stream_socket(S.fd);
  if (connect(S.fd, (void *)&sa, salen(sa.ss_family)) < 0) {
    fail_io("connect", -1);
    goto out;
  }
  // The reply line, as in `run`: which listener and which original destination.
  for (size_t n = 0; n < sizeof greeting - 1;) {
    ssize_t r = read(S.fd, greeting + n, 1);
    if (r <= 0) {
      fail_io("reading the reply line", r == 0 ? 1 : -1);
      goto out;
    }
    S.received++;
    if (greeting[n] == '\n') {
      greeting[n] = 0;
      break;
    }
    greeting[++n] = 0;
  }
  if (expect && strcmp(greeting, expect) != 0) {
    mismatch = 1;
    goto out;
  }
  for (int i = 0; i < nsizes; i++) {
    if (measure(up_chunk, (uint32_t)sizes[i], warmup_ms, duration_ms, &up[nup]) < 0) goto out;
    nup++;
    if (measure(down_chunk, (uint32_t)sizes[i], warmup_ms, duration_ms, &down[ndown]) < 0) goto out;
    ndown++;
  }
  // Round trips: latency samples come from the timed batches only (see `timed`).
  if (measure(ping_batch, (uint32_t)ping_size, warmup_ms, duration_ms, &ping) < 0) goto out;
  {
    req_t end = {.magic = STREAM_MAGIC, .op = OP_END, .size = 1};
    send_all(&end, sizeof end, "end request");
  }
out:
  close(S.fd);
  qsort(rtt.v, rtt.n, sizeof(uint64_t), cmp_u64);
  int bad = mismatch || S.error[0] || ping.bad >= 0;
  for (int i = 0; i < nup; i++) bad |= up[i].bad >= 0;
  for (int i = 0; i < ndown; i++) bad |= down[i].bad >= 0;
  printf("{\"reply\":\"%s\",\"mismatch\":%s,\"error\":\"%s\",\"bytesSent\":%llu,\"bytesReceived\":%llu,", greeting,
         mismatch ? "true" : "false", S.error, (unsigned long long)S.sent, (unsigned long long)S.received);
  print_phases("up", up, nup);
  print_phases("down", down, ndown);
  printf("\"ping\":{\"size\":%d,\"roundTrips\":%llu,\"seconds\":%.6f,\"cpuNs\":%llu,\"kthreadNs\":%llu,\"bad\":%lld,"
         "\"us\":{\"p50\":%.2f,\"p99\":%.2f,\"mean\":%.2f}}}\n",
         ping_size, (unsigned long long)ping.bytes, (double)ping.ns / 1e9, (unsigned long long)ping.cpu_ns,
         (unsigned long long)ping.kthread_ns, (long long)ping.bad, pct(&rtt, 50), pct(&rtt, 99), mean_us(&rtt));
  return bad ? 1 : 0;
}

// ----------------------------------------------------------------------------- main

static const char *opt(int argc, char **argv, const char *name) {
  for (int i = 2; i < argc - 1; i++)
    if (!strcmp(argv[i], name)) return argv[i + 1];
  return NULL;
}

static int opt_int(int argc, char **argv, const char *name, int dflt) {
  const char *v = opt(argc, argv, name);
  return v ? atoi(v) : dflt;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: sluice-bench serve|run|stream ...\n");
    return 2;
  }
  // Never outlive the harness that started us.
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  signal(SIGPIPE, SIG_IGN);
  enter_netns(opt(argc, argv, "--netns"));
  const char *cpu = opt(argc, argv, "--cpu");
  if (cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(atoi(cpu), &set);
    if (sched_setaffinity(0, sizeof set, &set) < 0) die("sched_setaffinity");
    pinned_cpu = atoi(cpu);
  }
  if (!strcmp(argv[1], "serve")) {
    const char *ports = opt(argc, argv, "--tcp");
    if (!ports) {
      fprintf(stderr, "sluice-bench serve: --tcp PORTS is required\n");
      return 2;
    }
    n_stream_ports = parse_ports(opt(argc, argv, "--stream-ports"), stream_ports, MAX_PORTS);
    if (n_stream_ports) make_pattern();
    serve(ports);
  }
  if (strcmp(argv[1], "run") != 0 && strcmp(argv[1], "stream") != 0) {
    fprintf(stderr, "sluice-bench: unknown mode %s\n", argv[1]);
    return 2;
  }
  const char *dst = opt(argc, argv, "--dst");
  if (!dst) {
    fprintf(stderr, "sluice-bench %s: --dst IP:PORT is required\n", argv[1]);
    return 2;
  }
  // Drop to the app's uid after setns and before any socket exists: the capture judges
  // the socket's owner.
  const char *uid = opt(argc, argv, "--uid");
  if (uid) {
    if (setgroups(0, NULL) < 0 || setgid((gid_t)atoi(uid)) < 0 || setuid((uid_t)atoi(uid)) < 0) die("setuid");
  }
  if (!strcmp(argv[1], "stream")) {
    S.server_pid = opt_int(argc, argv, "--server-pid", 0);
    const char *writes = opt(argc, argv, "--writes");
    return stream(dst, opt(argc, argv, "--expect"), writes ? writes : "4096,65536", opt_int(argc, argv, "--ping-size", 64),
                  opt_int(argc, argv, "--warmup-ms", 200), opt_int(argc, argv, "--duration-ms", 1000));
  }
  R.expect = opt(argc, argv, "--expect");
  R.server_pid = opt_int(argc, argv, "--server-pid", 0);
  R.send = opt(argc, argv, "--send");
  R.expect_in = opt(argc, argv, "--expect-in");
  R.cgroup_cpu = opt(argc, argv, "--cgroup-cpu");
  R.count = (unsigned long)opt_int(argc, argv, "--count", 0);
  const char *close_mode = opt(argc, argv, "--close");
  R.close_rst = !close_mode || !strcmp(close_mode, "rst");
  if (close_mode && !R.close_rst && strcmp(close_mode, "fin") != 0) {
    fprintf(stderr, "sluice-bench run: --close is rst or fin\n");
    return 2;
  }
  return run(dst, opt_int(argc, argv, "--concurrency", 1), opt_int(argc, argv, "--warmup-ms", 200),
             opt_int(argc, argv, "--duration-ms", 2000));
}
