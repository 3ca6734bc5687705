// sluice-bench run: connections back to back, N in flight on one epoll loop, each reply
// checked against --expect (or --expect-in); one JSON line of rate, latency and CPU.
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"
#include "sockaddr.h"

static void die(const char *what) { bench_die(what); }

enum { IDLE, CONNECTING, READING };

typedef struct {
  int fd, state;
  uint64_t t0, t_est;
  size_t len;
  char buf[2048]; // an HTTP response with the mesh's hop headers fits
} slot_t;

// One run: its options, the loop's state, and what it counted.
typedef struct {
  const bench_opts_t *o;
  ss_t dst;
  int close_rst;
  int ep;
  slot_t *slots;
  unsigned long started, inflight; // --count: connections opened, open now
  uint64_t measure_from, measure_to;
  int cpu_started;
  uint64_t cpu0;
  kthreads_t k0;
  samples_t connect, cycle;
  unsigned long done, errors, mismatches, warm;
  char first_reply[160], first_error[160];
} run_ctx_t;

// The processes' CPU time: the cgroup's when asked, else the client's and the server's.
static uint64_t procs_ns(const run_ctx_t *r) {
  return r->o->cgroup_cpu ? cgroup_ns(r->o->cgroup_cpu) : cpu_ns(0) + (r->o->server_pid ? cpu_ns(r->o->server_pid) : 0);
}

static void note_error(run_ctx_t *r, const char *what, int err) {
  if (!r->first_error[0]) snprintf(r->first_error, sizeof r->first_error, "%s: %s", what, strerror(err));
}

static void start(run_ctx_t *r, slot_t *s) {
  if (r->o->count && r->started >= r->o->count) return; // stays idle
  r->started++;
  s->fd = socket(r->dst.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (s->fd < 0) die("socket");
  s->len = 0, s->t_est = 0, s->t0 = now_ns();
  if (connect(s->fd, (void *)&r->dst, salen(r->dst.ss_family)) < 0 && errno != EINPROGRESS) {
    // Counted like a failed handshake; the slot retries on the next turn of the loop.
    r->errors++, note_error(r, "connect", errno);
    close(s->fd);
    s->state = IDLE;
    return;
  }
  s->state = CONNECTING;
  r->inflight++;
  // Edge-triggered: one registration serves the whole life of the connection.
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = s};
  if (epoll_ctl(r->ep, EPOLL_CTL_ADD, s->fd, &ev) < 0) die("epoll_ctl");
}

static void finish(run_ctx_t *r, slot_t *s, int ok) {
  const bench_opts_t *o = r->o;
  uint64_t t = now_ns();
  if (r->close_rst) {
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  }
  close(s->fd);
  s->state = IDLE;
  r->inflight--;
  if (!ok) {
    r->errors++;
    return;
  }
  s->buf[s->len] = 0;
  if (o->expect_in && !strstr(s->buf, o->expect_in)) r->mismatches++;
  // A request's reply is kept from its end (an HTTP body says most); a line from its start.
  const char *shown = o->send && s->len >= sizeof r->first_reply ? s->buf + s->len - (sizeof r->first_reply - 1) : s->buf;
  if (!r->first_reply[0]) snprintf(r->first_reply, sizeof r->first_reply, "%.159s", shown);
  char *nl = strchr(s->buf, '\n');
  if (nl) *nl = 0;
  if (o->expect && strcmp(s->buf, o->expect) != 0) r->mismatches++;
  uint64_t end = now_ns();
  if (s->t0 >= r->measure_from && t < r->measure_to) {
    r->done++;
    push(&r->connect, s->t_est - s->t0);
    push(&r->cycle, end - s->t0);
  } else {
    r->warm++;
  }
}

static void on_event(run_ctx_t *r, slot_t *s, uint32_t events) {
  const char *send = r->o->send;
  if (s->state == CONNECTING) {
    int err = 0;
    socklen_t el = sizeof err;
    getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &el);
    if (err) {
      note_error(r, "connect", err);
      return finish(r, s, 0);
    }
    if (!(events & (EPOLLOUT | EPOLLIN))) return;
    s->t_est = now_ns();
    s->state = READING;
    // A request of tens of bytes into an empty send buffer: never short on a fresh socket.
    size_t n = send ? strlen(send) : 0;
    if (n && write(s->fd, send, n) != (ssize_t)n) {
      note_error(r, "write", errno);
      return finish(r, s, 0);
    }
  }
  for (;;) {
    ssize_t n = read(s->fd, s->buf + s->len, sizeof s->buf - 1 - s->len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return; // edge-triggered: wait for the next edge
    if (n < 0) {
      note_error(r, "read", errno);
      return finish(r, s, 0);
    }
    if (n == 0) {
      if (!memchr(s->buf, '\n', s->len)) {
        note_error(r, "read: closed before a reply", ECONNRESET);
        return finish(r, s, 0);
      }
      return finish(r, s, 1);
    }
    s->len += (size_t)n;
    if (r->close_rst && !send && memchr(s->buf, '\n', s->len)) return finish(r, s, 1);
    if (s->len >= sizeof s->buf - 1) return finish(r, s, 1);
  }
}

// Opens connections until the measured window (or --count) is over.
static void loop(run_ctx_t *r) {
  int concurrency = r->o->concurrency;
  slot_t *slots = r->slots;
  for (int i = 0; i < concurrency; i++) start(r, &slots[i]);
  for (;;) {
    uint64_t t = now_ns();
    if (t >= r->measure_to) break;
    if (r->o->count && r->started >= r->o->count && r->inflight == 0) break;
    if (!r->cpu_started && t >= r->measure_from) {
      r->cpu_started = 1;
      kthreads_read(&r->k0, r->o->cpu); // first, so the client's own time leaves out the scan
      r->cpu0 = procs_ns(r);
    }
    // A slot whose connect failed at once is idle: retry it, unless nothing ever works.
    for (int i = 0; i < concurrency; i++)
      if (slots[i].state == IDLE) start(r, &slots[i]);
    if (r->errors > 1000 && r->done + r->warm == 0) break;
    struct epoll_event evs[64];
    int timeout = (int)((r->measure_to - t) / 1000000u) + 1;
    int n = epoll_wait(r->ep, evs, 64, timeout);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) die("epoll_wait");
    for (int i = 0; i < n; i++) {
      slot_t *s = evs[i].data.ptr;
      if (s->state != IDLE) on_event(r, s, evs[i].events);
      if (s->state == IDLE && now_ns() < r->measure_to) start(r, s);
    }
  }
}

static void report(run_ctx_t *r, double cpu_us, double kthread_us) {
  const bench_opts_t *o = r->o;
  double secs = o->count ? (double)(now_ns() - r->measure_from) / 1e9 : (double)o->duration_ms / 1000.0;
  sort_samples(&r->connect);
  sort_samples(&r->cycle);
  char reply[JSON_TEXT_MAX], error[JSON_TEXT_MAX];
  printf("{\"connections\":%lu,\"errors\":%lu,\"mismatches\":%lu,\"seconds\":%.3f,\"rate\":%.1f,"
         "\"connectUs\":{\"p50\":%.1f,\"p99\":%.1f,\"mean\":%.1f},"
         "\"cycleUs\":{\"p50\":%.1f,\"p99\":%.1f,\"mean\":%.1f},\"cpuUsPerConnection\":%.2f,"
         "\"kthreadUsPerConnection\":%.2f,\"firstReply\":\"%s\",\"firstError\":\"%s\"}\n",
         r->done, r->errors, r->mismatches, secs, (double)r->done / secs, pct(&r->connect, 50),
         pct(&r->connect, 99), mean_us(&r->connect), pct(&r->cycle, 50), pct(&r->cycle, 99),
         mean_us(&r->cycle), cpu_us, kthread_us, json_text(r->first_reply, reply, sizeof reply),
         json_text(r->first_error, error, sizeof error));
}

int run(const bench_opts_t *o) {
  run_ctx_t *r = calloc(1, sizeof *r);
  if (!r) die("calloc");
  r->o = o;
  if (parse_addr(o->dst, &r->dst, 1) < 0) {
    fprintf(stderr, "sluice-bench: bad --dst %s (IP:PORT or [IP6]:PORT)\n", o->dst);
    return 2;
  }
  if (o->concurrency < 1 || o->concurrency > MAX_CONCURRENCY) {
    fprintf(stderr, "sluice-bench: --concurrency must be 1..%d\n", MAX_CONCURRENCY);
    return 2;
  }
  r->close_rst = !o->close || !strcmp(o->close, "rst");
  r->ep = epoll_create1(EPOLL_CLOEXEC);
  if (r->ep < 0) die("epoll_create1");
  if (!(r->slots = calloc((size_t)o->concurrency, sizeof *r->slots))) die("calloc");
  uint64_t t_start = now_ns();
  r->measure_from = t_start + (uint64_t)o->warmup_ms * 1000000u;
  r->measure_to = r->measure_from + (uint64_t)o->duration_ms * 1000000u;
  loop(r);
  double cpu_us = -1, kthread_us = -1;
  if ((o->server_pid || o->cgroup_cpu) && r->cpu_started && r->done > 0) {
    uint64_t procs = procs_ns(r) - r->cpu0;
    kthreads_t k1;
    kthreads_read(&k1, o->cpu);
    uint64_t kth = kthreads_since(&r->k0, &k1);
    cpu_us = (double)(procs + kth) / 1000.0 / (double)r->done;
    kthread_us = (double)kth / 1000.0 / (double)r->done;
  }
  // Connections still in flight at the end are neither counted nor errors.
  for (int i = 0; i < o->concurrency; i++)
    if (r->slots[i].state != IDLE) close(r->slots[i].fd);
  report(r, cpu_us, kthread_us);
  return r->done > 0 && r->mismatches == 0 ? 0 : 1;
}
