// libsluice-netns.so: facts about a network namespace, read without moving the caller.
//
// Each call starts a private thread, which enters the namespace with setns(2) (that only
// moves the calling thread), reads what it needs, and exits. The daemon's own threads,
// Node's event loop among them, never change namespace.
//
//   int sluice_netns_cookie(const char *netns_path, uint64_t *cookie);
//   int sluice_netns_ifindex(const char *netns_path, const char *ifname, uint32_t *ifindex);
//
// Both return 0, or a positive errno (ENOENT: no such namespace or interface).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71 // Linux 5.14+
#endif

struct job {
  const char *path;
  const char *ifname; // NULL: read the cookie
  uint64_t cookie;
  uint32_t ifindex;
  int err;
};

static void *in_netns(void *arg) {
  struct job *j = arg;
  int nsfd = open(j->path, O_RDONLY | O_CLOEXEC);
  if (nsfd < 0) {
    j->err = errno;
    return NULL;
  }
  if (setns(nsfd, CLONE_NEWNET) < 0) {
    j->err = errno;
    close(nsfd);
    return NULL;
  }
  close(nsfd);
  if (j->ifname) {
    unsigned idx = if_nametoindex(j->ifname);
    if (idx == 0) j->err = errno ? errno : ENOENT;
    j->ifindex = idx;
    return NULL;
  }
  // Any socket will do: the cookie is its namespace's.
  int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) {
    j->err = errno;
    return NULL;
  }
  socklen_t len = sizeof j->cookie;
  if (getsockopt(s, SOL_SOCKET, SO_NETNS_COOKIE, &j->cookie, &len) < 0) j->err = errno;
  close(s);
  return NULL;
}

static int run(struct job *j) {
  pthread_t t;
  int rc = pthread_create(&t, NULL, in_netns, j);
  if (rc != 0) return rc;
  pthread_join(t, NULL);
  return j->err;
}

int sluice_netns_cookie(const char *netns_path, uint64_t *cookie) {
  struct job j = {.path = netns_path};
  int rc = run(&j);
  if (rc == 0) *cookie = j.cookie;
  return rc;
}

int sluice_netns_ifindex(const char *netns_path, const char *ifname, uint32_t *ifindex) {
  struct job j = {.path = netns_path, .ifname = ifname};
  int rc = run(&j);
  if (rc == 0) *ifindex = j.ifindex;
  return rc;
}
