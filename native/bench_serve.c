// sluice-bench serve: the proxy stand-in. For every connection it asks SO_ORIGINAL_DST
// as a proxy would, writes "<listener port> <original destination>\n" and closes; a
// connection to one of --stream-ports is served as a stream session first.
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"
#include "sockaddr.h"

static void die(const char *what) { bench_die(what); }

typedef struct {
  int fd, port;
} listener_t;

// What every connection's handling needs: which ports are stream sessions, the pattern
// they are checked against, and one read buffer (sessions run one at a time, inline).
typedef struct {
  int stream_ports[MAX_PORTS], n_stream_ports;
  pattern_t pattern;
  unsigned char *buf;
} serve_ctx_t;

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

static int port_of(const ss_t *sa) {
  return ntohs(sa->ss_family == AF_INET ? ((const struct sockaddr_in *)sa)->sin_port : ((const struct sockaddr_in6 *)sa)->sin6_port);
}

// The proxy end of a stream connection, inline: the bench runs one thing at a time, and
// /proc/PID/schedstat (the CPU figure) counts this thread only.
static void session(serve_ctx_t *c, int fd) {
  if (!c->buf && !(c->buf = malloc(MAX_IO))) return;
  unsigned char *buf = c->buf;
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
        if (a.bad < 0) a.bad = pattern_check(&c->pattern, buf, (size_t)r, q.offset + a.got);
        a.got += (uint64_t)r;
      }
      if (write_full(fd, &a, sizeof a) < 0) return;
    } else if (q.op == OP_DOWN) {
      for (uint64_t sent = 0; sent < q.bytes;) {
        size_t n = q.bytes - sent < q.size ? (size_t)(q.bytes - sent) : q.size;
        if (write_full(fd, pat(&c->pattern, q.offset + sent), n) < 0) return;
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
static void answer(serve_ctx_t *c, int fd, int port) {
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
  for (int i = 0; i < c->n_stream_ports; i++)
    if (port_of(&od) == c->stream_ports[i]) {
      session(c, fd);
      break;
    }
  close(fd);
}

void serve(const bench_opts_t *o) {
  serve_ctx_t c = {.n_stream_ports = 0, .buf = NULL};
  c.n_stream_ports = parse_ports(o->stream_ports, c.stream_ports, MAX_PORTS);
  if (c.n_stream_ports) pattern_make(&c.pattern);
  listener_t ls[2 * MAX_PORTS];
  int nl = 0;
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) die("epoll_create1");
  for (const char *s = o->tcp; s && *s && nl < 2 * MAX_PORTS;) {
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
      while ((fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC)) >= 0) answer(&c, fd, l->port);
    }
  }
}
