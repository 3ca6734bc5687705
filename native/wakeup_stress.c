// sluice-wakeup's stress phase (see wakeup.c).
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "wakeup.h"

// The lost wake-ups seen in the field are intermittent, so one wake-up proves little:
// many request/response rounds (64 B and 32 KiB, read in 4 KiB pieces with an epoll wait
// before each) and a write-space round (EPOLLOUT after EAGAIN) on the enrolled socket.

#define ROUND_BIG (32 * 1024)
#define PIECE 4096
#define MAX_STALLS 3

struct echo_job {
  int fd;
  int rounds;
  long bytes; // 0: echo `rounds` requests; >0: read this many bytes, then stop
};

static int read_exact(int fd, char *buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = recv(fd, buf + got, n - got, 0);
    if (r <= 0) return -1;
    got += r;
  }
  return 0;
}

static void *echo(void *arg) {
  struct echo_job *j = arg;
  static char buf[ROUND_BIG];
  if (j->bytes > 0) {
    long left = j->bytes;
    while (left > 0) {
      ssize_t r = recv(j->fd, buf, left < (long)sizeof buf ? left : (long)sizeof buf, 0);
      if (r <= 0) break;
      left -= r;
      sleep_ms(1); // a slow reader, so the writer hits EAGAIN
    }
    return NULL;
  }
  for (int i = 0; i < j->rounds; i++) {
    size_t n = (i % 2) ? ROUND_BIG : PAYLOAD;
    if (read_exact(j->fd, buf, n) < 0) return NULL;
    if (send(j->fd, buf, n, MSG_NOSIGNAL) != (ssize_t)n) return NULL;
  }
  return NULL;
}

// Waits for `events` on ep; a timeout with the condition actually true is a lost wake-up.
static int wait_for(int ep, int fd, uint32_t events, int timeout_ms, struct stress *st) {
  struct epoll_event ev;
  long start = now_ms();
  int n = epoll_wait(ep, &ev, 1, timeout_ms);
  long waited = now_ms() - start;
  if (waited > st->max_wait_ms) st->max_wait_ms = waited;
  if (n < 0) {
    st->err = errno;
    return -1;
  }
  if (n == 0) {
    struct pollfd p = {.fd = fd, .events = (events & EPOLLIN) ? POLLIN : POLLOUT};
    char c;
    int ready = (events & EPOLLIN) ? recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) > 0 : poll(&p, 1, 0) > 0;
    if (ready) st->stalls++;
    else return -1; // nothing to wait for: a broken round, not a wake-up problem
  }
  return 0;
}

// An epoll instance watching w for `events`, and the echo thread running job j on the
// other end; -1 (st->err set) when either could not be started.
static int start_echo(int w, uint32_t events, struct echo_job *j, pthread_t *t, struct stress *st) {
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = events};
  if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, w, &ev) < 0 || pthread_create(t, NULL, echo, j) != 0) {
    st->err = errno;
    if (ep >= 0) close(ep);
    return -1;
  }
  return ep;
}

// Ends the writer's side, so the echo thread sees EOF if the rounds were cut short.
static void stop_echo(int w, int ep, pthread_t t) {
  shutdown(w, SHUT_WR);
  pthread_join(t, NULL);
  close(ep);
}

void ping_pong(int w, int e, int rounds, int timeout_ms, struct stress *st) {
  static char buf[ROUND_BIG];
  struct echo_job j = {.fd = e, .rounds = rounds};
  pthread_t t;
  int ep = start_echo(w, EPOLLIN, &j, &t, st);
  if (ep < 0) return;
  memset(buf, 'p', sizeof buf);
  for (int i = 0; i < rounds && st->stalls < MAX_STALLS && !st->err; i++) {
    size_t n = (i % 2) ? ROUND_BIG : PAYLOAD, got = 0;
    if (send(w, buf, n, MSG_NOSIGNAL) != (ssize_t)n) {
      st->err = errno;
      break;
    }
    while (got < n && st->stalls < MAX_STALLS) {
      if (wait_for(ep, w, EPOLLIN, timeout_ms, st) < 0) break;
      ssize_t r = recv(w, buf, n - got < PIECE ? n - got : PIECE, MSG_DONTWAIT);
      if (r > 0) got += r;
      else if (r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
        st->err = r == 0 ? EPIPE : errno;
        break;
      }
    }
    if (got < n) break;
    st->rounds++;
  }
  stop_echo(w, ep, t);
}

void write_space(int w, int e, long total, int timeout_ms, struct stress *st) {
  static char buf[65536];
  struct echo_job j = {.fd = e, .bytes = total};
  pthread_t t;
  int ep = start_echo(w, EPOLLOUT, &j, &t, st);
  if (ep < 0) return;
  memset(buf, 'o', sizeof buf);
  long sent = 0;
  while (sent < total && st->stalls < MAX_STALLS && !st->err) {
    long want = total - sent < (long)sizeof buf ? total - sent : (long)sizeof buf;
    ssize_t r = send(w, buf, want, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (r > 0) {
      sent += r;
      continue;
    }
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      st->rounds++;
      if (wait_for(ep, w, EPOLLOUT, timeout_ms, st) < 0) break;
      continue;
    }
    st->err = errno;
  }
  stop_echo(w, ep, t);
}

void print_stress(const char *path, const char *mode, const struct stress *st, int last) {
  printf("{\"path\":\"%s\",\"mode\":\"%s\",\"rounds\":%d,\"stalls\":%d,\"maxWaitMs\":%ld,\"errno\":%d}%s", path, mode, st->rounds, st->stalls, st->max_wait_ms, st->err,
         last ? "" : ",");
}

