/*
 * The plugin's HTTP/1.1 client for the node manager: POST over one
 * keep-alive connection to unix:///path or http://host:port, nothing else
 * (the node manager serves a unix socket and, optionally, plain loopback
 * TCP). It exists because the plugin runs once per ADD and DEL: loading
 * libcurl and its TLS, Kerberos and LDAP dependencies cost about 8 ms of
 * every run on the machines we measure (bench/cni_latency.sh), more than
 * all the node manager calls of an ADD together. The daemons keep libcurl
 * (pkg/rpc.c).
 *
 * Answers: Content-Length, chunked, or until close; at most
 * NMH_MAX_RESPONSE bytes.
 */
#ifndef WGCNI_CNI_NMHTTP_H
#define WGCNI_CNI_NMHTTP_H

#include "buf.h"

#include <stdbool.h>
#include <stddef.h>

#define NMH_MAX_RESPONSE (32 * 1024 * 1024)

struct nmh;

/* NULL with errno: EINVAL for a URL it cannot serve, ENOMEM. */
struct nmh *nmh_new(const char *url);
void nmh_free(struct nmh *h);

/*
 * POST body (content_type) to path; the answer's status and body (malloc'd,
 * NUL-terminated, free()) on 0. Errors: -ENOENT (no socket),
 * -ECONNREFUSED, -ETIMEDOUT (timeout_ms for connect + answer),
 * -EHOSTUNREACH, -ENETUNREACH, -ECONNRESET (broken before a whole answer),
 * -EPROTO (not HTTP), -EMSGSIZE, -ENOMEM. A kept-alive connection the
 * server closed meanwhile is reopened once, before anything was answered.
 */
int nmh_post(struct nmh *h, const char *path, const char *content_type,
	     const void *body, size_t len, long timeout_ms, int *status, char **resp,
	     size_t *resp_len);

/*
 * The parser, apart for the fuzzer: one answer in in[0..len) (eof: the
 * connection ended after it). 1 when whole (*status, *keep_alive, the body
 * in body, whose max bounds it); 0 when more is needed; -ECONNRESET when
 * eof cut it short; -EPROTO, -EMSGSIZE, -ENOMEM. in needs no NUL.
 */
int nmh_parse(const char *in, size_t len, bool eof, int *status, bool *keep_alive,
	      struct buf *body);

#endif
