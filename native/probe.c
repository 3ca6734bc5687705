// sluice-probe: the test harness's eyes inside a network namespace.
//
//   sluice-probe serve --name NAME --tcp PORTS --udp PORTS [--netns PATH]
//   sluice-probe connect --dst IP:PORT|[IP6]:PORT [--src IP] [--udp] [--uid N] [--gid N]
//                        [--netns PATH] [--timeout-ms N] [--tag T]
//
// The server reports, for every connection, which listener took it, the peer it saw and
// what SO_ORIGINAL_DST says. The client reports what its own socket believes (getpeername),
// which is what capture must leave untouched. Both print one JSON line per event, so the
// TypeScript harness can compare them with what decide() predicts.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sockaddr.h"

#define SO_ORIGINAL_DST 80      // <linux/netfilter_ipv4.h>, same value for SOL_IP
#define IP6T_SO_ORIGINAL_DST 80 // <linux/netfilter_ipv6/ip6_tables.h>
#define MAX_PORTS 64

static void die(const char *what) {
  fprintf(stderr, "sluice-probe: %s: %s\n", what, strerror(errno));
  exit(2);
}

// ---------------------------------------------------------------------------- serve

static const char *g_name = "probe";

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

// Keeps only characters that are safe inside a JSON string without escaping.
static void clean_tag(char *s) {
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

__attribute__((noreturn)) static void serve(const char *tcp, const char *udp) {
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

// -------------------------------------------------------------------------- connect

static int fail(const char *what, int err) {
  printf("{\"ok\":false,\"error\":\"%s: %s\",\"errno\":%d}\n", what, strerror(err), err);
  return 1;
}

static int wait_fd(int fd, short events, int timeout_ms) {
  struct pollfd p = {.fd = fd, .events = events};
  int r;
  while ((r = poll(&p, 1, timeout_ms)) < 0 && errno == EINTR) {}
  if (r == 0) errno = ETIMEDOUT;
  return r > 0 ? 0 : -1;
}

static int client(const char *dst, const char *src, int udp, const char *tag, int timeout_ms) {
  ss_t d, s;
  if (parse_addr(dst, &d, 1) < 0) return fail("bad --dst", EINVAL);
  if (src && parse_addr(src, &s, 0) < 0) return fail("bad --src", EINVAL);
  if (src && s.ss_family != d.ss_family) return fail("--src family differs from --dst", EINVAL);
  // The socket is created only now, after setuid: owner matches and cgroup hooks judge
  // the credentials the socket was created with.
  int fd = socket(d.ss_family, (udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail("socket", errno);
  int one = 1;
  if (src) {
    setsockopt(fd, d.ss_family == AF_INET ? SOL_IP : SOL_IPV6,
               d.ss_family == AF_INET ? IP_FREEBIND : IPV6_FREEBIND, &one, sizeof one);
    if (bind(fd, (void *)&s, salen(s.ss_family)) < 0) return fail("bind", errno);
  }
  int fl = fcntl(fd, F_GETFL);
  fcntl(fd, F_SETFL, fl | O_NONBLOCK);
  if (connect(fd, (void *)&d, salen(d.ss_family)) < 0) {
    if (errno != EINPROGRESS) return fail("connect", errno);
    int err = 0;
    socklen_t el = sizeof err;
    if (wait_fd(fd, POLLOUT, timeout_ms) < 0) return fail("connect", errno);
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
    if (err) return fail("connect", err);
  }
  char line[300];
  int ll = snprintf(line, sizeof line, "%s\n", tag);
  if (send(fd, line, (size_t)ll, MSG_NOSIGNAL) < 0) return fail("send", errno);

  char reply[1024];
  size_t len = 0;
  ss_t from;
  socklen_t fl2 = sizeof from;
  memset(&from, 0, sizeof from);
  while (len < sizeof reply - 1 && !memchr(reply, '\n', len)) {
    if (wait_fd(fd, POLLIN, timeout_ms) < 0) return fail("recv", errno);
    ssize_t r = recvfrom(fd, reply + len, sizeof reply - 1 - len, 0, (void *)&from, &fl2);
    if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (r < 0) return fail("recv", errno);
    if (r == 0) return fail("recv: connection closed before a reply", ECONNRESET);
    len += (size_t)r;
    if (udp) break;
  }
  reply[len] = 0;
  char *nl = strchr(reply, '\n');
  if (nl) *nl = 0;

  ss_t peer, local;
  socklen_t pl = sizeof peer, lol = sizeof local;
  char p[80], l[80], f[80];
  if (getpeername(fd, (void *)&peer, &pl) < 0) return fail("getpeername", errno);
  getsockname(fd, (void *)&local, &lol);
  printf("{\"ok\":true,\"server\":%s,\"clientPeer\":\"%s\",\"clientLocal\":\"%s\"", reply,
         fmt(&peer, p, sizeof p), fmt(&local, l, sizeof l));
  // A connected UDP socket's recvfrom reports the datagram's source: after REDIRECT's
  // reverse NAT it must be the original destination, not the DNS proxy.
  if (udp) printf(",\"replyFrom\":\"%s\"", fmt(&from, f, sizeof f));
  printf("}\n");
  close(fd);
  return 0;
}

// ----------------------------------------------------------------------------- main

static const char *opt(int argc, char **argv, const char *name) {
  for (int i = 2; i < argc - 1; i++)
    if (!strcmp(argv[i], name)) return argv[i + 1];
  return NULL;
}

static int flag(int argc, char **argv, const char *name) {
  for (int i = 2; i < argc; i++)
    if (!strcmp(argv[i], name)) return 1;
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: sluice-probe serve|connect ...\n");
    return 2;
  }
  // Never outlive the harness that started us, whatever happens to it.
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  signal(SIGPIPE, SIG_IGN);
  enter_netns(opt(argc, argv, "--netns"));
  if (!strcmp(argv[1], "serve")) {
    const char *name = opt(argc, argv, "--name");
    if (name) g_name = name;
    serve(opt(argc, argv, "--tcp"), opt(argc, argv, "--udp"));
  }
  if (strcmp(argv[1], "connect") != 0) {
    fprintf(stderr, "sluice-probe: unknown mode %s\n", argv[1]);
    return 2;
  }
  const char *dst = opt(argc, argv, "--dst");
  if (!dst) return fail("--dst is required", EINVAL);
  // Drop privileges after setns (which needs CAP_SYS_ADMIN) and before the socket exists.
  const char *gid = opt(argc, argv, "--gid"), *uid = opt(argc, argv, "--uid");
  if ((gid || uid) && setgroups(0, NULL) < 0) return fail("setgroups", errno);
  if (gid && setgid((gid_t)atoi(gid)) < 0) return fail("setgid", errno);
  if (uid && setuid((uid_t)atoi(uid)) < 0) return fail("setuid", errno);
  const char *tms = opt(argc, argv, "--timeout-ms");
  const char *tag = opt(argc, argv, "--tag");
  char t[256];
  snprintf(t, sizeof t, "%s", tag ? tag : "-");
  clean_tag(t);
  return client(dst, opt(argc, argv, "--src"), flag(argc, argv, "--udp"), t, tms ? atoi(tms) : 2000);
}
