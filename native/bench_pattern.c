// The stream protocol's two halves share this: the byte pattern every stream byte is
// checked against, and blocking I/O that moves whole buffers.
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "bench.h"

// Not a multiple of any write size, so a chunk delivered at the wrong offset does not
// match by accident.
#define PATTERN_PERIOD ((1u << 20) + 8u * 131u)

// PATTERN_PERIOD + MAX_IO bytes: every slice is contiguous.
void pattern_make(pattern_t *p) {
  p->bytes = malloc(PATTERN_PERIOD + MAX_IO);
  if (!p->bytes) bench_die("malloc");
  uint64_t x = 0x9E3779B97F4A7C15ull;
  for (size_t i = 0; i < PATTERN_PERIOD; i += 8) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17; // xorshift64
    memcpy(p->bytes + i, &x, 8);
  }
  memcpy(p->bytes + PATTERN_PERIOD, p->bytes, MAX_IO);
}

const unsigned char *pat(const pattern_t *p, uint64_t offset) { return p->bytes + offset % PATTERN_PERIOD; }

int64_t pattern_check(const pattern_t *p, const unsigned char *buf, size_t n, uint64_t offset) {
  const unsigned char *want = pat(p, offset);
  if (memcmp(buf, want, n) == 0) return -1;
  size_t i = 0;
  while (buf[i] == want[i]) i++;
  return (int64_t)(offset + i);
}

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

// No Nagle (as Envoy sets its sockets), and a bound on every wait so a lost wake-up or a
// vanished peer ends the session instead of hanging the bench.
void stream_socket(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct timeval tv = {.tv_sec = 10};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}
