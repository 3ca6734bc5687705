// Socket addresses shared by the native helpers (probe, bench): the text form, parsing,
// and entering a netns. Each program defines die() (it prints its own name).
#ifndef SLUICE_SOCKADDR_H
#define SLUICE_SOCKADDR_H

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct sockaddr_storage ss_t;

static void die(const char *what);

// "IP:PORT" or "[IP6]:PORT": the same text form as formatEndpoint() in src/policy/net.ts.
static inline const char *fmt(const ss_t *sa, char *out, size_t n) {
  char ip[INET6_ADDRSTRLEN] = "?";
  if (sa->ss_family == AF_INET) {
    const struct sockaddr_in *s = (const void *)sa;
    inet_ntop(AF_INET, &s->sin_addr, ip, sizeof ip);
    snprintf(out, n, "%s:%u", ip, ntohs(s->sin_port));
  } else {
    const struct sockaddr_in6 *s = (const void *)sa;
    inet_ntop(AF_INET6, &s->sin6_addr, ip, sizeof ip);
    snprintf(out, n, "[%s]:%u", ip, ntohs(s->sin6_port));
  }
  return out;
}

// Parses "IP:PORT" / "[IP6]:PORT", or a bare IP (also "[IP6]") when with_port is 0.
static inline int parse_addr(const char *text, ss_t *sa, int with_port) {
  char buf[128];
  snprintf(buf, sizeof buf, "%s", text);
  char *host = buf, *port = NULL;
  if (buf[0] == '[') {
    char *end = strchr(buf, ']');
    if (!end) return -1;
    *end = 0, host = buf + 1;
    if (with_port) port = end[1] == ':' ? end + 2 : NULL;
  } else if (with_port) {
    char *c = strrchr(buf, ':');
    if (c && strchr(buf, ':') == c) *c = 0, port = c + 1;
  }
  if (with_port && !port) return -1;
  memset(sa, 0, sizeof *sa);
  struct sockaddr_in *s4 = (void *)sa;
  struct sockaddr_in6 *s6 = (void *)sa;
  uint16_t p = htons(port ? (uint16_t)atoi(port) : 0);
  if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) s4->sin_family = AF_INET, s4->sin_port = p;
  else if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) s6->sin6_family = AF_INET6, s6->sin6_port = p;
  else return -1;
  return 0;
}

static inline socklen_t salen(int family) {
  return family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
}

static inline void enter_netns(const char *path) {
  if (!path) return;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0 || setns(fd, CLONE_NEWNET) < 0) die(path);
  close(fd);
}

#endif
