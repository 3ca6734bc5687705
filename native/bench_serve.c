// sluice-bench serve: plays the proxy. For every connection it asks SO_ORIGINAL_DST
// exactly as a proxy would (falling back to the socket's own address when nothing
// answers), writes "<listener port> <original destination>\n" and closes; a connection
// to one of --stream-ports is served as a stream session first (bench_stream.c's peer).
#define _GNU_SOURCE
#include <errno.h>
#include <sys/epoll.h>

#include "bench.h"

typedef struct {
  int fd, port;
} listener_t;

typedef struct {
  int stream_ports[MAX_PORTS], n_stream_ports;
  unsigned char *buf; // MAX_IO bytes, for stream sessions
  listener_t ls[2 * MAX_PORTS];
  int nl;
} server_t;

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
static void session(server_t *sv, int fd) {
  unsigned char *buf = sv->buf;
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
static void answer(server_t *sv, int fd, int port) {
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
  for (int i = 0; i < sv->n_stream_ports; i++)
    if (port_of(&od) == sv->stream_ports[i]) {
      session(sv, fd);
      break;
    }
  close(fd);
}

void bench_serve(const char *ports, const char *stream_ports) {
  static server_t sv; // lives until the process ends (large: kept off the stack)
  sv.n_stream_ports = parse_ports(stream_ports, sv.stream_ports, MAX_PORTS);
  if (sv.n_stream_ports) {
    make_pattern();
    if (!(sv.buf = malloc(MAX_IO))) die("malloc");
  }
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) die("epoll_create1");
  for (const char *s = ports; s && *s && sv.nl < 2 * MAX_PORTS;) {
    char *end;
    int port = (int)strtol(s, &end, 10);
    for (int f = 0; f < 2; f++) {
      listener_t *l = &sv.ls[sv.nl++];
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
      while ((fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC)) >= 0) answer(&sv, fd, l->port);
    }
  }
}
