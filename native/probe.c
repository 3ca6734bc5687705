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
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "probe.h"
#include "sockaddr.h"

void probe_die(const char *what) {
  fprintf(stderr, "sluice-probe: %s: %s\n", what, strerror(errno));
  exit(2);
}

static void die(const char *what) { probe_die(what); }

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
    serve(name ? name : "probe", opt(argc, argv, "--tcp"), opt(argc, argv, "--udp"));
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
