/*
 * What the RPC client (rpc.c) and the etcd client (etcd.c, etcd_watch.c)
 * share about libcurl: the options every transfer sets and the one
 * translation of CURLcode into a negative errno.
 */
#ifndef WGCNI_CURLX_H
#define WGCNI_CURLX_H

#include <curl/curl.h>
#include <stdatomic.h>

/* URL (libcurl copies it), no signals, http(s) only, the CA file when
 * ca_file is set, and a progress callback that aborts the transfer
 * (CURLE_ABORTED_BY_CALLBACK) once *cancelled is true. libcurl calls it at
 * least once a second, also while a long poll waits for its answer. */
void curlx_setup(CURL *h, const char *url, const char *ca_file, const atomic_bool *cancelled);

/* 0 for CURLE_OK, else a negative errno: -ECONNREFUSED, -ETIMEDOUT,
 * -EHOSTUNREACH, -ECONNRESET (broke without an answer), -ENOMEM, -EMSGSIZE
 * (the write callback refused), -EINVAL, -ECANCELED, -EKEYREJECTED (the
 * server's certificate is not trusted), -EIO for anything else. */
int curlx_errno(CURLcode cc);

#endif
