// sluice-bench: the connection-rate load generator behind `npm run bench`.
//
//   sluice-bench serve --tcp PORTS [--netns PATH] [--cpu N]
//   sluice-bench run --dst IP:PORT [--netns PATH] [--cpu N] [--uid N] [--concurrency N]
//                    [--warmup-ms N] [--duration-ms N] [--expect TEXT] [--close rst|fin]
//                    [--server-pid PID]
//
// The server plays the proxy: for every connection it asks SO_ORIGINAL_DST exactly as a
// proxy would (falling back to the socket's own address when nothing answers), writes
// "<listener port> <original destination>\n" and closes. The client opens connections
// back to back (N in flight), reads the reply, checks it against --expect so a run that
// was not captured as intended cannot pass for a fast one, and prints one JSON line:
// connections per second, connect latency (connect() to writable) and cycle latency
// (connect() to the reply read and the socket closed), p50/p99 in microseconds. With
// --server-pid it also reports the CPU time client and server used per connection
// (/proc/PID/schedstat): unlike the rate, time that other jobs take from the CPU does
// not count in it.
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
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
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

#define SO_ORIGINAL_DST 80 // <linux/netfilter_ipv4.h>; the same value for SOL_IPV6
#define MAX_PORTS 16
#define MAX_CONCURRENCY 1024

typedef struct sockaddr_storage ss_t;

static void die(const char *what) {
  fprintf(stderr, "sluice-bench: %s: %s\n", what, strerror(errno));
  exit(2);
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static const char *fmt(const ss_t *sa, char *out, size_t n) {
  char ip[INET6_ADDRSTRLEN] = "?";
  if (sa->ss_family == AF_INET) {
    const struct sockaddr_in *s = (const void *)sa;
    inet_ntop(AF_INET, &s->sin_addr, ip, sizeof ip);
    snprintf(out, n, "%s:%u", ip, ntohs(s->sin_port));
  } else {
    const struct sockaddr_in6 *s = (const void *)sa;
    inet_ntop(AF_INET6, &s->sin6_addr, ip, sizeof ip);
    snprintf(out, n, "[%s]:%u", ip, ntohs(s->sin6_port));
  }
  return out;
}

// "IP:PORT" or "[IP6]:PORT".
static int parse_endpoint(const char *text, ss_t *sa) {
  char buf[128];
  snprintf(buf, sizeof buf, "%s", text);
  char *host = buf, *port;
  if (buf[0] == '[') {
    char *end = strchr(buf, ']');
    if (!end || end[1] != ':') return -1;
    *end = 0, host = buf + 1, port = end + 2;
  } else {
    char *c = strrchr(buf, ':');
    if (!c) return -1;
    *c = 0, port = c + 1;
  }
  memset(sa, 0, sizeof *sa);
  struct sockaddr_in *s4 = (void *)sa;
  struct sockaddr_in6 *s6 = (void *)sa;
  uint16_t p = htons((uint16_t)atoi(port));
  if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) s4->sin_family = AF_INET, s4->sin_port = p;
  else if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) s6->sin6_family = AF_INET6, s6->sin6_port = p;
  else return -1;
  return 0;
}

static socklen_t salen(int family) {
  return family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
}

static void enter_netns(const char *path) {
  if (!path) return;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0 || setns(fd, CLONE_NEWNET) < 0) die(path);
  close(fd);
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
  close(fd);
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
  char buf[160];
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

static struct {
  ss_t dst;
  int server_pid;
  int cpu_started;
  uint64_t cpu0;
  const char *expect;
  int close_rst;
  int ep;
  uint64_t measure_from, measure_to;
  samples_t connect, cycle;
  unsigned long done, errors, mismatches, warm;
  char first_reply[160], first_error[160];
} R;

static void note_error(const char *what, int err) {
  if (!R.first_error[0]) snprintf(R.first_error, sizeof R.first_error, "%s: %s", what, strerror(err));
}

static void start(slot_t *s) {
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
  if (!ok) {
    R.errors++;
    return;
  }
  s->buf[s->len] = 0;
  char *nl = strchr(s->buf, '\n');
  if (nl) *nl = 0;
  if (!R.first_reply[0]) snprintf(R.first_reply, sizeof R.first_reply, "%s", s->buf);
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
    if (R.close_rst && memchr(s->buf, '\n', s->len)) return finish(s, 1);
    if (s->len >= sizeof s->buf - 1) return finish(s, 1);
  }
}

static int run(const char *dst, int concurrency, int warmup_ms, int duration_ms) {
  if (parse_endpoint(dst, &R.dst) < 0) {
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
    if (!R.cpu_started && t >= R.measure_from) {
      R.cpu_started = 1;
      R.cpu0 = cpu_ns(0) + (R.server_pid ? cpu_ns(R.server_pid) : 0);
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
  double cpu_us = -1;
  if (R.server_pid && R.cpu_started && R.done > 0)
    cpu_us = (double)(cpu_ns(0) + cpu_ns(R.server_pid) - R.cpu0) / 1000.0 / (double)R.done;
  // Connections still in flight at the end are neither counted nor errors.
  for (int i = 0; i < concurrency; i++)
    if (slots[i].state != IDLE) close(slots[i].fd);
  double secs = (double)duration_ms / 1000.0;
  qsort(R.connect.v, R.connect.n, sizeof(uint64_t), cmp_u64);
  qsort(R.cycle.v, R.cycle.n, sizeof(uint64_t), cmp_u64);
  printf("{\"connections\":%lu,\"errors\":%lu,\"mismatches\":%lu,\"seconds\":%.3f,\"rate\":%.1f,"
         "\"connectUs\":{\"p50\":%.1f,\"p99\":%.1f,\"mean\":%.1f},"
         "\"cycleUs\":{\"p50\":%.1f,\"p99\":%.1f,\"mean\":%.1f},\"cpuUsPerConnection\":%.2f,"
         "\"firstReply\":\"%s\",\"firstError\":\"%s\"}\n",
         R.done, R.errors, R.mismatches, secs, (double)R.done / secs, pct(&R.connect, 50),
         pct(&R.connect, 99), mean_us(&R.connect), pct(&R.cycle, 50), pct(&R.cycle, 99),
         mean_us(&R.cycle), cpu_us, R.first_reply, R.first_error);
  return R.done > 0 && R.mismatches == 0 ? 0 : 1;
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
    fprintf(stderr, "usage: sluice-bench serve|run ...\n");
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
  }
  if (!strcmp(argv[1], "serve")) {
    const char *ports = opt(argc, argv, "--tcp");
    if (!ports) {
      fprintf(stderr, "sluice-bench serve: --tcp PORTS is required\n");
      return 2;
    }
    serve(ports);
  }
  if (strcmp(argv[1], "run") != 0) {
    fprintf(stderr, "sluice-bench: unknown mode %s\n", argv[1]);
    return 2;
  }
  const char *dst = opt(argc, argv, "--dst");
  if (!dst) {
    fprintf(stderr, "sluice-bench run: --dst IP:PORT is required\n");
    return 2;
  }
  // Drop to the app's uid after setns and before any socket exists: the capture judges
  // the socket's owner.
  const char *uid = opt(argc, argv, "--uid");
  if (uid) {
    if (setgroups(0, NULL) < 0 || setgid((gid_t)atoi(uid)) < 0 || setuid((uid_t)atoi(uid)) < 0) die("setuid");
  }
  R.expect = opt(argc, argv, "--expect");
  R.server_pid = opt_int(argc, argv, "--server-pid", 0);
  const char *close_mode = opt(argc, argv, "--close");
  R.close_rst = !close_mode || !strcmp(close_mode, "rst");
  if (close_mode && !R.close_rst && strcmp(close_mode, "fin") != 0) {
    fprintf(stderr, "sluice-bench run: --close is rst or fin\n");
    return 2;
  }
  return run(dst, opt_int(argc, argv, "--concurrency", 1), opt_int(argc, argv, "--warmup-ms", 200),
             opt_int(argc, argv, "--duration-ms", 2000));
}
