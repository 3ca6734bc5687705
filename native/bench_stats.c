// Measurement helpers of sluice-bench: latency samples, CPU time of processes, of a
// cgroup and of the pinned CPU's kernel threads, and JSON string escaping.
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

void push(samples_t *s, uint64_t x) {
  if (s->n == s->cap) {
    s->cap = s->cap ? 2 * s->cap : 65536;
    s->v = realloc(s->v, s->cap * sizeof *s->v);
    if (!s->v) bench_die("realloc");
  }
  s->v[s->n++] = x;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

void sort_samples(samples_t *s) {
  if (s->n) qsort(s->v, s->n, sizeof(uint64_t), cmp_u64);
}

double pct(const samples_t *s, double p) {
  if (s->n == 0) return 0;
  size_t i = (size_t)(p / 100.0 * (double)s->n);
  if (i >= s->n) i = s->n - 1;
  return (double)s->v[i] / 1000.0;
}

double mean_us(const samples_t *s) {
  if (s->n == 0) return 0;
  double sum = 0;
  for (size_t i = 0; i < s->n; i++) sum += (double)s->v[i];
  return sum / (double)s->n / 1000.0;
}

uint64_t cpu_ns(int pid) {
  char path[64];
  unsigned long long ns = 0;
  if (pid > 0) snprintf(path, sizeof path, "/proc/%d/schedstat", pid);
  else snprintf(path, sizeof path, "/proc/self/schedstat");
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  if (fscanf(f, "%llu", &ns) != 1) ns = 0;
  fclose(f);
  return ns;
}

uint64_t cgroup_ns(const char *dir) {
  char path[512], line[128];
  snprintf(path, sizeof path, "%s/cpu.stat", dir);
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  unsigned long long us = 0;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "usage_usec %llu", &us) == 1) break;
  fclose(f);
  return (uint64_t)us * 1000u;
}

// Work the traffic causes but no process of ours runs lands on the pinned CPU's kernel
// threads: softirqs the kernel defers (ksoftirqd/N), and work items queued on this CPU
// (kworker/N:*; tearing down a socket that was in a sockmap, for one).
void kthreads_read(kthreads_t *k, int cpu) {
  k->n = 0;
  if (cpu < 0) return;
  char soft[32], work[32];
  snprintf(soft, sizeof soft, "ksoftirqd/%d", cpu);
  int wl = snprintf(work, sizeof work, "kworker/%d:", cpu);
  DIR *d = opendir("/proc");
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d)) && k->n < MAX_KTHREADS) {
    if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
    int pid = atoi(e->d_name);
    char path[64], comm[64] = "";
    snprintf(path, sizeof path, "/proc/%d/comm", pid);
    FILE *f = fopen(path, "r");
    if (!f) continue;
    if (!fgets(comm, sizeof comm, f)) comm[0] = 0;
    fclose(f);
    comm[strcspn(comm, "\n")] = 0;
    if (strcmp(comm, soft) != 0 && strncmp(comm, work, (size_t)wl) != 0) continue;
    k->t[k->n].pid = pid, k->t[k->n++].ns = cpu_ns(pid);
  }
  closedir(d);
}

// What the threads of `now` ran since `then`; one that appeared meanwhile ran only since.
uint64_t kthreads_since(const kthreads_t *then, const kthreads_t *now) {
  uint64_t sum = 0;
  for (int i = 0; i < now->n; i++) {
    uint64_t before = 0;
    for (int j = 0; j < then->n; j++)
      if (then->t[j].pid == now->t[i].pid) before = then->t[j].ns;
    if (now->t[i].ns > before) sum += now->t[i].ns - before;
  }
  return sum;
}

const char *json_text(const char *in, char *o, size_t size) {
  size_t n = 0;
  for (const unsigned char *c = (const unsigned char *)in; *c && n < size - 7; c++) {
    if (*c == '"' || *c == '\\') o[n++] = '\\', o[n++] = (char)*c;
    else if (*c < 0x20) n += (size_t)snprintf(o + n, 7, "\\u%04x", *c);
    else o[n++] = (char)*c;
  }
  o[n] = 0;
  return o;
}
