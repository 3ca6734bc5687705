// sluice-bench: the load generator behind `npm run bench`.
//
//   sluice-bench serve --tcp PORTS [--stream-ports PORTS] [--netns PATH] [--cpu N]
//   sluice-bench run --dst IP:PORT [--netns PATH] [--cpu N] [--uid N] [--concurrency N]
//                    [--warmup-ms N] [--duration-ms N] [--expect TEXT] [--close rst|fin]
//                    [--server-pid PID] [--send TEXT] [--expect-in TEXT] [--cgroup-cpu DIR]
//                    [--count N]
//   sluice-bench stream --dst IP:PORT [--netns PATH] [--cpu N] [--uid N] [--expect TEXT]
//                    [--writes 4096,65536] [--ping-size 64] [--warmup-ms N]
//                    [--duration-ms N] [--server-pid PID]
//
// The server plays the proxy: for every connection it asks SO_ORIGINAL_DST exactly as a
// proxy would (falling back to the socket's own address when nothing answers), writes
// "<listener port> <original destination>\n" and closes. The client opens connections
// back to back (N in flight), reads the reply, checks it against --expect so a run that
// was not captured as intended cannot pass for a fast one, and prints one JSON line:
// connections per second, connect latency (connect() to writable) and cycle latency
// (connect() to the reply read and the socket closed), p50/p99 in microseconds. With
// --server-pid it also reports the CPU time client and server used per connection
// (/proc/PID/schedstat), plus, when pinned with --cpu, the time of that CPU's kernel
// threads (ksoftirqd/N, kworker/N:*), where deferred softirqs and work items run: unlike
// the rate, time that other jobs take from the CPU does not count in it.
//
// --send TEXT makes run a request client for a real proxy (the bench's HAProxy mesh):
// each connection writes TEXT once connected and reads the reply to EOF (the proxy
// closes), and --expect-in TEXT must occur somewhere in that reply (an HTTP response
// does not fit --expect's one line). --cgroup-cpu DIR takes the CPU time from DIR's
// cpu.stat (every process of that cgroup: client, proxies and apps) instead of the
// client's and --server-pid's.
//
// --cpu pins the process. With the client and the server on the same CPU, all the work
// of a connection (both processes, and the softirqs they raise) runs there, so the rate
// measures CPU time per connection instead of cross-CPU wake-up latency, and a second
// core's noise (other jobs) stays out of it.
//
// --close rst (default) ends each connection with an RST from the client once the reply
// is in: no TIME_WAIT anywhere, so the ephemeral port range and the conntrack table stay
// bounded however long the run. --close fin reads to EOF and closes normally; the
// server, which closed first, keeps each tuple in TIME_WAIT.
//
// --count N opens exactly N connections and stops once the last one is done (the fault
// suite's leak test: every connection accounted for); --duration-ms is then a time limit,
// and "seconds" the time the N took.
//
// stream measures one long connection instead: the data path between the app and its
// proxy. The server treats a connection whose original destination port is one of
// --stream-ports as a stream session: it writes the same reply line, then serves
// requests on that connection with blocking I/O until the client ends it. The client, per
// write size: "up" (app to proxy, the client writes) and "down" (the server writes), each
// as 4 MiB chunks for --duration-ms after --warmup-ms, then 64-byte (--ping-size)
// request/response round trips. Every byte is compared with a fixed pseudo-random
// pattern at its stream offset (memcmp, the same cost for every capture), so lost,
// duplicated or reordered bytes are reported, never timed. It prints one JSON line: bytes,
// seconds and CPU time (as for run) per phase, round-trip percentiles, and every byte the
// socket sent and received (what an sk_msg redirect counter should have seen).
//
// The parts (bench.h lists them) share no state: main parses the options into one
// bench_opts_t, and each mode keeps its own context struct.
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "sockaddr.h"

void bench_die(const char *what) {
  fprintf(stderr, "sluice-bench: %s: %s\n", what, strerror(errno));
  exit(2);
}

static void die(const char *what) { bench_die(what); }

uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int parse_ports(const char *text, int *out, int max) {
  int n = 0;
  for (const char *s = text; s && *s && n < max;) {
    char *end;
    out[n++] = (int)strtol(s, &end, 10);
    s = *end ? end + 1 : end;
  }
  return n;
}

// The value after NAME anywhere from argv[2] on, or NULL.
static const char *opt(int argc, char **argv, const char *name) {
  for (int i = 2; i < argc - 1; i++)
    if (!strcmp(argv[i], name)) return argv[i + 1];
  return NULL;
}

static int opt_int(int argc, char **argv, const char *name, int dflt) {
  const char *v = opt(argc, argv, name);
  return v ? atoi(v) : dflt;
}

// Every option, with each mode's defaults; checking them is the modes' business.
static bench_opts_t parse_opts(int argc, char **argv) {
  int run = !strcmp(argv[1], "run");
  const char *writes = opt(argc, argv, "--writes"), *cpu = opt(argc, argv, "--cpu"), *uid = opt(argc, argv, "--uid");
  return (bench_opts_t){
      .mode = argv[1],
      .netns = opt(argc, argv, "--netns"),
      .dst = opt(argc, argv, "--dst"),
      .tcp = opt(argc, argv, "--tcp"),
      .stream_ports = opt(argc, argv, "--stream-ports"),
      .writes = writes ? writes : "4096,65536",
      .expect = opt(argc, argv, "--expect"),
      .send = opt(argc, argv, "--send"),
      .expect_in = opt(argc, argv, "--expect-in"),
      .cgroup_cpu = opt(argc, argv, "--cgroup-cpu"),
      .close = opt(argc, argv, "--close"),
      .pin = cpu != NULL,
      .cpu = cpu ? atoi(cpu) : -1,
      .set_uid = uid != NULL,
      .uid = uid ? atoi(uid) : 0,
      .server_pid = opt_int(argc, argv, "--server-pid", 0),
      .concurrency = opt_int(argc, argv, "--concurrency", 1),
      .warmup_ms = opt_int(argc, argv, "--warmup-ms", 200),
      .duration_ms = opt_int(argc, argv, "--duration-ms", run ? 2000 : 1000),
      .ping_size = opt_int(argc, argv, "--ping-size", 64),
      .count = (unsigned long)opt_int(argc, argv, "--count", 0),
  };
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: sluice-bench serve|run|stream ...\n");
    return 2;
  }
  bench_opts_t o = parse_opts(argc, argv);
  // Never outlive the harness that started us.
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  signal(SIGPIPE, SIG_IGN);
  enter_netns(o.netns);
  if (o.pin) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(o.cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) < 0) die("sched_setaffinity");
  }
  if (!strcmp(o.mode, "serve")) {
    if (!o.tcp) {
      fprintf(stderr, "sluice-bench serve: --tcp PORTS is required\n");
      return 2;
    }
    serve(&o);
  }
  if (strcmp(o.mode, "run") != 0 && strcmp(o.mode, "stream") != 0) {
    fprintf(stderr, "sluice-bench: unknown mode %s\n", o.mode);
    return 2;
  }
  if (!o.dst) {
    fprintf(stderr, "sluice-bench %s: --dst IP:PORT is required\n", o.mode);
    return 2;
  }
  // Drop to the app's uid after setns and before any socket exists: the capture judges
  // the socket's owner.
  if (o.set_uid) {
    if (setgroups(0, NULL) < 0 || setgid((gid_t)o.uid) < 0 || setuid((uid_t)o.uid) < 0) die("setuid");
  }
  if (!strcmp(o.mode, "stream")) return stream(&o);
  if (o.close && strcmp(o.close, "rst") != 0 && strcmp(o.close, "fin") != 0) {
    fprintf(stderr, "sluice-bench run: --close is rst or fin\n");
    return 2;
  }
  return run(&o);
}
