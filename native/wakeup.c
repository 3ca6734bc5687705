// sluice-wakeup: the socket side of the sockmap wake-up check (src/bpf/probes.ts).
//
//   sluice-wakeup [--timeout-ms N] [--delay-ms N]
//
// Kernels 6.6.128+, 6.12.75+ and 6.18.14+ can lose the readiness wake-up of a socket that
// sits in a sockmap: the bytes arrive, but a thread blocked in epoll_wait() or poll() is
// not woken. This helper measures it, without touching the caller's network namespace:
//
//  1. unshare(CLONE_NEWNET): a private, anonymous namespace with only lo, which dies with
//     this process, so nothing is ever left behind;
//  2. opens four loopback connections and prints one JSON line describing their sockets;
//  3. waits for a line on stdin: meanwhile the caller copies the sockets with
//     pidfd_getfd() and puts them in a sockhash that has sluice's sk_msg program
//     ("redirect*": both ends, so data goes through bpf_msg_redirect_hash; "tcp*": only
//     the server end, so data arrives by TCP into a socket that is in a sockmap);
//  4. single wake-ups: for each of the first two connections and each way of waiting
//     (epoll level-triggered, epoll edge-triggered, poll), a thread blocks, the main
//     thread sends 64 bytes once the waiter is blocked, and the waiter reports whether it
//     was woken before the timeout; FIONREAD is read, then the receiver is drained with
//     MSG_DONTWAIT to tell "not woken although the data was there" from "no data";
//  5. stress (the field reports are intermittent): request/response rounds on the first
//     two connections, and writes until EAGAIN then EPOLLOUT waits on the other two;
//  6. prints one JSON line with the results and exits.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71 // Linux 5.14+
#endif

#include "wakeup.h"

void fail(const char *what) {
  printf("{\"error\":\"%s: %s\"}\n", what, strerror(errno));
  fflush(stdout);
  exit(2);
}

long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void lo_up(void) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) fail("socket");
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "lo");
  if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0) fail("SIOCGIFFLAGS lo");
  ifr.ifr_flags |= IFF_UP;
  if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) fail("SIOCSIFFLAGS lo");
  close(s);
}

struct pair {
  const char *name;
  int client; // the sender
  int server; // the receiver, which is waited on
};

static void connect_pair(int listener, struct pair *p) {
  struct sockaddr_in addr;
  socklen_t len = sizeof addr;
  if (getsockname(listener, (struct sockaddr *)&addr, &len) < 0) fail("getsockname");
  p->client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (p->client < 0) fail("socket");
  if (connect(p->client, (struct sockaddr *)&addr, sizeof addr) < 0) fail("connect");
  p->server = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
  if (p->server < 0) fail("accept");
}

static void print_socket(const char *pair, const char *end, int fd, int last) {
  struct sockaddr_in l, r;
  socklen_t ll = sizeof l, rl = sizeof r;
  char lip[INET_ADDRSTRLEN], rip[INET_ADDRSTRLEN];
  if (getsockname(fd, (struct sockaddr *)&l, &ll) < 0 || getpeername(fd, (struct sockaddr *)&r, &rl) < 0) fail("getsockname/getpeername");
  inet_ntop(AF_INET, &l.sin_addr, lip, sizeof lip);
  inet_ntop(AF_INET, &r.sin_addr, rip, sizeof rip);
  printf("{\"pair\":\"%s\",\"end\":\"%s\",\"fd\":%d,\"local\":\"%s:%u\",\"remote\":\"%s:%u\"}%s", pair, end, fd, lip, ntohs(l.sin_port), rip, ntohs(r.sin_port),
         last ? "" : ",");
}

enum waiter_kind { WAIT_EPOLL, WAIT_EPOLL_ET, WAIT_POLL, WAIT_KINDS };
static const char *const WAITER_NAMES[WAIT_KINDS] = {"epoll", "epoll-et", "poll"};

struct wait_job {
  int fd;
  enum waiter_kind kind;
  int timeout_ms;
  int armed[2]; // pipe: the waiter writes one byte just before it blocks
  int woke;
  long waited_ms;
  int err;
};

// FIONREAD on the receiver: the regression's other half reports 0 for bytes that came by
// TCP into a socket that is in a sockmap without a verdict program.
static int inq(int fd) {
  int n = -1;
  if (ioctl(fd, FIONREAD, &n) < 0) return -errno;
  return n;
}

static void *waiter(void *arg) {
  struct wait_job *j = arg;
  int n;
  long start;
  if (j->kind == WAIT_POLL) {
    struct pollfd pfd = {.fd = j->fd, .events = POLLIN};
    start = now_ms();
    if (write(j->armed[1], "x", 1) != 1) j->err = errno;
    n = poll(&pfd, 1, j->timeout_ms);
    j->woke = n > 0 && (pfd.revents & POLLIN);
  } else {
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN | (j->kind == WAIT_EPOLL_ET ? EPOLLET : 0)};
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, j->fd, &ev) < 0) {
      j->err = errno;
      if (write(j->armed[1], "x", 1) != 1) j->err = errno;
      return NULL;
    }
    start = now_ms();
    if (write(j->armed[1], "x", 1) != 1) j->err = errno;
    n = epoll_wait(ep, &ev, 1, j->timeout_ms);
    j->woke = n > 0 && (ev.events & EPOLLIN);
    close(ep);
  }
  if (n < 0) j->err = errno;
  j->waited_ms = now_ms() - start;
  return NULL;
}

// Bytes readable on fd right now (MSG_DONTWAIT), draining them.
static long drain(int fd) {
  char buf[4096];
  long total = 0;
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n <= 0) break;
    total += n;
  }
  return total;
}

void sleep_ms(int ms) {
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
  }
}

int main(int argc, char **argv) {
  int timeout_ms = 1000, delay_ms = 50, rounds = 400;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--timeout-ms") == 0) timeout_ms = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--delay-ms") == 0) delay_ms = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--rounds") == 0) rounds = atoi(argv[i + 1]);
  }
  if (unshare(CLONE_NEWNET) < 0) fail("unshare(CLONE_NEWNET) (root is needed)");
  lo_up();

  int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (listener < 0 || bind(listener, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(listener, 8) < 0) fail("listen on 127.0.0.1");
  // redirect*: both ends enrolled by the caller; tcp*: only the server end.
  struct pair pairs[4] = {{.name = "redirect"}, {.name = "tcp"}, {.name = "redirect-ws"}, {.name = "tcp-ws"}};
  for (int i = 0; i < 4; i++) connect_pair(listener, &pairs[i]);
  close(listener);

  uint64_t cookie = 0;
  socklen_t clen = sizeof cookie;
  if (getsockopt(pairs[0].client, SOL_SOCKET, SO_NETNS_COOKIE, &cookie, &clen) < 0) fail("SO_NETNS_COOKIE");
  printf("{\"pid\":%d,\"netnsCookie\":\"%llu\",\"sockets\":[", getpid(), (unsigned long long)cookie);
  for (int i = 0; i < 4; i++) {
    print_socket(pairs[i].name, "client", pairs[i].client, 0);
    print_socket(pairs[i].name, "server", pairs[i].server, i == 3);
  }
  printf("]}\n");
  fflush(stdout);

  char line[64];
  if (!fgets(line, sizeof line, stdin)) fail("stdin closed before the sockets were enrolled");

  printf("{\"results\":[");
  int first = 1;
  for (int p = 0; p < 2; p++) {
    for (int k = 0; k < WAIT_KINDS; k++) {
      struct wait_job j = {.fd = pairs[p].server, .kind = k, .timeout_ms = timeout_ms};
      if (pipe2(j.armed, O_CLOEXEC) < 0) fail("pipe");
      pthread_t t;
      if (pthread_create(&t, NULL, waiter, &j) != 0) fail("pthread_create");
      char c;
      if (read(j.armed[0], &c, 1) != 1) fail("waiter never armed");
      // The waiter is about to block; give it time to actually sleep in the kernel, so
      // the data arrives to a sleeping waiter (that is the wake-up being tested).
      sleep_ms(delay_ms);
      char data[PAYLOAD];
      memset(data, 'w', sizeof data);
      ssize_t sent = send(pairs[p].client, data, sizeof data, MSG_NOSIGNAL);
      pthread_join(t, NULL);
      if (!j.woke) sleep_ms(delay_ms); // late data still counts as "there, but nobody was woken"
      int fionread = inq(pairs[p].server);
      long readable = drain(pairs[p].server);
      printf("%s{\"path\":\"%s\",\"waiter\":\"%s\",\"sent\":%zd,\"woke\":%s,\"waitedMs\":%ld,\"fionread\":%d,\"readableAfter\":%ld,\"errno\":%d}", first ? "" : ",",
             pairs[p].name, WAITER_NAMES[k], sent, j.woke ? "true" : "false", j.waited_ms, fionread, readable, j.err);
      first = 0;
      close(j.armed[0]);
      close(j.armed[1]);
    }
  }
  printf("],\"stress\":[");
  // The waiting side is always an enrolled socket: both ends of `redirect`, and the
  // receiver of `tcp` (its peer is not enrolled, so everything goes by TCP).
  struct stress st[4];
  memset(st, 0, sizeof st);
  ping_pong(pairs[0].client, pairs[0].server, rounds, timeout_ms, &st[0]);
  ping_pong(pairs[1].server, pairs[1].client, rounds, timeout_ms, &st[1]);
  print_stress("redirect", "ping-pong", &st[0], 0);
  print_stress("tcp", "ping-pong", &st[1], 0);
  write_space(pairs[2].client, pairs[2].server, 4L << 20, timeout_ms, &st[2]);
  write_space(pairs[3].server, pairs[3].client, 4L << 20, timeout_ms, &st[3]);
  print_stress("redirect", "write-space", &st[2], 0);
  print_stress("tcp", "write-space", &st[3], 1);
  printf("]}\n");
  fflush(stdout);
  return 0;
}
