// sluice-bench: the byte pattern and the blocking I/O both ends of a stream use.
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/tcp.h>
#include <sys/time.h>
#include <time.h>

#include "bench.h"

void bench_die(const char *what) {
  fprintf(stderr, "sluice-bench: %s: %s\n", what, strerror(errno));
  exit(2);
}

uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

// "80,443": up to `max` numbers; returns how many.
int parse_ports(const char *text, int *out, int max) {
  int n = 0;
  for (const char *s = text; s && *s && n < max;) {
    char *end;
    out[n++] = (int)strtol(s, &end, 10);
    s = *end ? end + 1 : end;
  }
  return n;
}

// Not a multiple of any write size, so a chunk delivered at the wrong offset does not
// match by accident.
#define PATTERN_PERIOD ((1u << 20) + 8u * 131u)

// Process-wide and read-only once made: both modes that use it compare against the
// same bytes. PATTERN_PERIOD + MAX_IO bytes, so every slice is contiguous.
static unsigned char *pattern;

void make_pattern(void) {
  if (pattern) return;
  pattern = malloc(PATTERN_PERIOD + MAX_IO);
  if (!pattern) die("malloc");
  uint64_t x = 0x9E3779B97F4A7C15ull;
  for (size_t i = 0; i < PATTERN_PERIOD; i += 8) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17; // xorshift64
    memcpy(pattern + i, &x, 8);
  }
  memcpy(pattern + PATTERN_PERIOD, pattern, MAX_IO);
}

const unsigned char *pat(uint64_t offset) { return pattern + offset % PATTERN_PERIOD; }

// The first offset in [offset, offset + n) whose byte differs from the pattern, or -1.
int64_t check(const unsigned char *buf, size_t n, uint64_t offset) {
  const unsigned char *want = pat(offset);
  if (memcmp(buf, want, n) == 0) return -1;
  size_t i = 0;
  while (buf[i] == want[i]) i++;
  return (int64_t)(offset + i);
}

// 0 when all n bytes moved, 1 on EOF before that, -1 on an error (errno set).
int read_full(int fd, void *buf, size_t n) {
  for (size_t got = 0; got < n;) {
    ssize_t r = read(fd, (char *)buf + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -1;
    if (r == 0) return 1;
    got += (size_t)r;
  }
  return 0;
}

int write_full(int fd, const void *buf, size_t n) {
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
void stream_socket(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct timeval tv = {.tv_sec = 10};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}
