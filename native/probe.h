// probe.h: what the two halves of sluice-probe share (probe.c: the client and main;
// probe_serve.c: the server).
#ifndef SLUICE_PROBE_H
#define SLUICE_PROBE_H

#define SO_ORIGINAL_DST 80      // <linux/netfilter_ipv4.h>, same value for SOL_IP
#define IP6T_SO_ORIGINAL_DST 80 // <linux/netfilter_ipv6/ip6_tables.h>

// Prints "sluice-probe: WHAT: strerror(errno)" and exits 2.
__attribute__((noreturn)) void probe_die(const char *what);
// Keeps only characters that are safe inside a JSON string without escaping.
void clean_tag(char *s);
// Listens on every TCP and UDP port of the lists ("80,443"), v4 and v6, and answers
// each connection or datagram with one JSON line; never returns.
__attribute__((noreturn)) void serve(const char *name, const char *tcp, const char *udp);

#endif
