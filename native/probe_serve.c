// sluice-probe's server (see probe.c): which listener took a connection, the peer it
// saw and what SO_ORIGINAL_DST says.
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "probe.h"
#include "sockaddr.h"

#define MAX_PORTS 64

static void die(const char *what) { probe_die(what); }

static const char *g_name;

typedef struct {
  int fd, udp, port, family;
} listener_t;

typedef struct {
  int fd, port;
  size_t len;
  char buf[256];
} conn_t;

// The reply: what this listener saw. origDst is asked exactly as a proxy asks it.
static int reply_json(char *out, size_t n, int port, const ss_t *peer, const ss_t *local, int fd,
                      const char *tag) {
  char p[80], l[80], o[80] = "null";
  int oerr = 0;
  if (fd >= 0) {
    ss_t od;
    socklen_t olen = sizeof od;
    memset(&od, 0, sizeof od);
    int level = local->ss_family == AF_INET ? SOL_IP : SOL_IPV6;
    int name = local->ss_family == AF_INET ? SO_ORIGINAL_DST : IP6T_SO_ORIGINAL_DST;
    if (getsockopt(fd, level, name, &od, &olen) == 0) {
      char t[72];
      snprintf(o, sizeof o, "\"%s\"", fmt(&od, t, sizeof t));
    } else {
      oerr = errno;
    }
  }
  return snprintf(out, n,
                  "{\"server\":\"%s\",\"port\":%d,\"peer\":\"%s\",\"local\":\"%s\","
                  "\"origDst\":%s,\"origDstErrno\":%d,\"tag\":\"%s\"}\n",
                  g_name, port, fmt(peer, p, sizeof p), fmt(local, l, sizeof l), o, oerr, tag);
}

void clean_tag(char *s) {
  for (; *s; s++)
    if (*s == '\n' || *s == '\r') *s = 0;
    else if (*s == '"' || *s == '\\' || (unsigned char)*s < 0x20) *s = '_';
}

static void tcp_readable(int ep, conn_t *c) {
  ssize_t r = read(c->fd, c->buf + c->len, sizeof c->buf - 1 - c->len);
  if (r < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (r > 0) c->len += (size_t)r;
  c->buf[c->len] = 0;
  // Wait for a whole line unless the peer closed or the buffer is full.
  if (r > 0 && !strchr(c->buf, '\n') && c->len < sizeof c->buf - 1) return;
  if (r >= 0) {
    ss_t peer, local;
    socklen_t pl = sizeof peer, ll = sizeof local;
    getpeername(c->fd, (void *)&peer, &pl);
    getsockname(c->fd, (void *)&local, &ll);
    clean_tag(c->buf);
    char out[1024];
    int n = reply_json(out, sizeof out, c->port, &peer, &local, c->fd, c->buf);
    // A few hundred bytes into an empty send buffer: never short on a fresh socket.
    if (write(c->fd, out, (size_t)n) < 0) { /* the client went away; nothing to report */ }
  }
  epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
  close(c->fd);
  free(c);
}

// UDP: reply from the exact address the datagram was sent to (IP_PKTINFO), as a DNS
// server bound to that address would. Replying from a routed source would not match the
// conntrack reply tuple, and REDIRECT's reverse NAT (the reply source the client sees)
// would never be applied.
static void udp_readable(listener_t *l) {
  char data[512], ctl[256], out[1024];
  ss_t peer, local;
  memset(&local, 0, sizeof local);
  struct iovec iov = {data, sizeof data - 1};
  struct msghdr m = {.msg_name = &peer, .msg_namelen = sizeof peer, .msg_iov = &iov,
                     .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof ctl};
  ssize_t r = recvmsg(l->fd, &m, MSG_DONTWAIT);
  if (r < 0) return;
  data[r] = 0;
  local.ss_family = (sa_family_t)l->family;
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
    if (c->cmsg_level == SOL_IP && c->cmsg_type == IP_PKTINFO) {
      struct in_pktinfo *pi = (void *)CMSG_DATA(c);
      struct sockaddr_in *s = (void *)&local;
      s->sin_addr = pi->ipi_addr, s->sin_port = htons((uint16_t)l->port);
      pi->ipi_spec_dst = pi->ipi_addr, pi->ipi_ifindex = 0; // reply from that address
    } else if (c->cmsg_level == SOL_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
      struct in6_pktinfo *pi = (void *)CMSG_DATA(c);
      struct sockaddr_in6 *s = (void *)&local;
      s->sin6_addr = pi->ipi6_addr, s->sin6_port = htons((uint16_t)l->port);
      pi->ipi6_ifindex = 0;
    }
  }
  clean_tag(data);
  int n = reply_json(out, sizeof out, l->port, &peer, &local, -1, data);
  iov.iov_base = out, iov.iov_len = (size_t)n;
  sendmsg(l->fd, &m, 0); // m still holds the peer and the pktinfo to reply from
}

static int parse_ports(const char *s, int *ports) {
  int n = 0;
  for (char *end; s && *s && n < MAX_PORTS; s = *end ? end + 1 : end) ports[n++] = (int)strtol(s, &end, 10);
  return n;
}

static int make_listener(int family, int udp, int port) {
  int fd = socket(family, (udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket");
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (family == AF_INET6) {
    // Separate v4 and v6 sockets: a v4 peer then never shows up as ::ffff:a.b.c.d.
    setsockopt(fd, SOL_IPV6, IPV6_V6ONLY, &one, sizeof one);
    setsockopt(fd, SOL_IPV6, IPV6_FREEBIND, &one, sizeof one);
    if (udp) setsockopt(fd, SOL_IPV6, IPV6_RECVPKTINFO, &one, sizeof one);
  } else {
    setsockopt(fd, SOL_IP, IP_FREEBIND, &one, sizeof one);
    if (udp) setsockopt(fd, SOL_IP, IP_PKTINFO, &one, sizeof one);
  }
  ss_t sa;
  parse_addr(family == AF_INET ? "0.0.0.0" : "::", &sa, 0);
  ((struct sockaddr_in *)&sa)->sin_port = htons((uint16_t)port); // same offset in sin6
  if (bind(fd, (void *)&sa, salen(sa.ss_family)) < 0) {
    fprintf(stderr, "sluice-probe: bind %s/%d %s: %s\n", udp ? "udp" : "tcp", port,
            family == AF_INET ? "v4" : "v6", strerror(errno));
    exit(2);
  }
  if (!udp && listen(fd, 512) < 0) die("listen");
  return fd;
}

void serve(const char *name, const char *tcp, const char *udp) {
  g_name = name;
  int tp[MAX_PORTS], up[MAX_PORTS];
  int nt = parse_ports(tcp, tp), nu = parse_ports(udp, up);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) die("epoll_create1");
  static listener_t ls[4 * MAX_PORTS];
  int nl = 0;
  for (int u = 0; u < 2; u++)
    for (int i = 0; i < (u ? nu : nt); i++)
      for (int f = 0; f < 2; f++) {
        listener_t *l = &ls[nl++];
        l->udp = u, l->port = u ? up[i] : tp[i], l->family = f ? AF_INET6 : AF_INET;
        l->fd = make_listener(l->family, u, l->port);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = l};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, l->fd, &ev) < 0) die("epoll_ctl");
      }
  printf("ready\n");
  fflush(stdout);
  for (;;) {
    struct epoll_event evs[64];
    int n = epoll_wait(ep, evs, 64, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) die("epoll_wait");
    for (int i = 0; i < n; i++) {
      void *p = evs[i].data.ptr;
      // Listeners live in ls[]; anything else is an accepted connection.
      if (p >= (void *)ls && p < (void *)(ls + nl)) {
        listener_t *l = p;
        if (l->udp) { udp_readable(l); continue; }
        int fd;
        while ((fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
          conn_t *c = calloc(1, sizeof *c);
          if (!c) die("calloc");
          c->fd = fd, c->port = l->port;
          struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
          epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
        }
      } else {
        tcp_readable(ep, p);
      }
    }
  }
}
