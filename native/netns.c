// libsluice-netns.so: facts about a network namespace, read without moving the caller.
//
// Each call starts a private thread, which enters the namespace with setns(2) (that only
// moves the calling thread), reads what it needs, and exits. The daemon's own threads,
// Node's event loop among them, never change namespace.
//
// A pod names its netns path, so the path is hostile: it is opened only after statfs
// says it is on nsfs (a FIFO, a device or a regular file is never opened), with
// O_NONBLOCK, and the open fd is checked again (fstatfs, and NS_GET_NSTYPE says network)
// so a path swapped in between is caught.
//
//   int sluice_netns_open(const char *path, int *fd, uint64_t *cookie, uint64_t *ino, uint64_t *dev);
//   int sluice_netns_cookie(const char *netns_path, uint64_t *cookie);
//   int sluice_netns_ifindex(const char *netns_path, const char *ifname, uint32_t *ifindex);
//
// All return 0, or a positive errno (ENOENT: no such namespace or interface;
// EMEDIUMTYPE: the path is not a network namespace). sluice_netns_open hands the checked
// fd to the caller, who closes it.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71 // Linux 5.14+
#endif
#ifndef NSFS_MAGIC
#define NSFS_MAGIC 0x6e736673
#endif
#define NS_GET_NSTYPE_IOCTL 0xb703 // _IO(0xb7, 0x3), Linux 4.11+

struct job {
  int nsfd;
  const char *ifname; // NULL: read the cookie
  uint64_t cookie;
  uint32_t ifindex;
  int err;
};

static int is_nsfs(const struct statfs *s) { return (unsigned long)s->f_type == (unsigned long)NSFS_MAGIC; }

// Opens `path` only if it is a network namespace; *fd is the caller's.
static int open_checked(const char *path, int *fd) {
  struct statfs sfs;
  if (statfs(path, &sfs) < 0) return errno;
  if (!is_nsfs(&sfs)) return EMEDIUMTYPE;
  int nsfd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
  if (nsfd < 0) return errno;
  int rc = 0;
  if (fstatfs(nsfd, &sfs) < 0) rc = errno;
  else if (!is_nsfs(&sfs)) rc = EMEDIUMTYPE;
  else if (ioctl(nsfd, NS_GET_NSTYPE_IOCTL) != CLONE_NEWNET) rc = EMEDIUMTYPE;
  if (rc != 0) {
    close(nsfd);
    return rc;
  }
  *fd = nsfd;
  return 0;
}

static void *in_netns(void *arg) {
  struct job *j = arg;
  if (setns(j->nsfd, CLONE_NEWNET) < 0) {
    j->err = errno;
    return NULL;
  }
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

int sluice_netns_open(const char *path, int *fd, uint64_t *cookie, uint64_t *ino, uint64_t *dev) {
  int nsfd;
  int rc = open_checked(path, &nsfd);
  if (rc != 0) return rc;
  struct stat st;
  if (fstat(nsfd, &st) < 0) {
    rc = errno;
    close(nsfd);
    return rc;
  }
  struct job j = {.nsfd = nsfd};
  rc = run(&j);
  if (rc != 0) {
    close(nsfd);
    return rc;
  }
  *fd = nsfd;
  *cookie = j.cookie;
  *ino = st.st_ino;
  *dev = st.st_dev;
  return 0;
}

static int with_path(const char *path, struct job *j) {
  int rc = open_checked(path, &j->nsfd);
  if (rc != 0) return rc;
  rc = run(j);
  close(j->nsfd);
  return rc;
}

int sluice_netns_cookie(const char *netns_path, uint64_t *cookie) {
  struct job j = {0};
  int rc = with_path(netns_path, &j);
  if (rc == 0) *cookie = j.cookie;
  return rc;
}

int sluice_netns_ifindex(const char *netns_path, const char *ifname, uint32_t *ifindex) {
  struct job j = {.ifname = ifname};
  int rc = with_path(netns_path, &j);
  if (rc == 0) *ifindex = j.ifindex;
  return rc;
}
