// wakeup.h: what the two halves of sluice-wakeup share (wakeup.c: setup and single
// wake-ups; wakeup_stress.c: the stress phase).
#ifndef SLUICE_WAKEUP_H
#define SLUICE_WAKEUP_H

#define PAYLOAD 64

// One JSON line on stdout, so the caller can report the reason as `unknown: ...`; exits.
__attribute__((noreturn)) void fail(const char *what);
long now_ms(void);
void sleep_ms(int ms);

struct stress {
  int rounds;
  int stalls;
  long max_wait_ms;
  int err;
};

// Request/response rounds between w (waits) and e (echoes); lost wake-ups count as stalls.
void ping_pong(int w, int e, int rounds, int timeout_ms, struct stress *st);
// Writes `total` bytes on w until EAGAIN, then waits for EPOLLOUT; e reads slowly.
void write_space(int w, int e, long total, int timeout_ms, struct stress *st);
void print_stress(const char *path, const char *mode, const struct stress *st, int last);

#endif
