/*
 * The watch stream: one thread per watch driving one transfer through a
 * curl multi handle, so that etcd_watch_stop() wakes it at once
 * (curl_multi_wakeup) instead of waiting for a progress callback.
 *
 * The gateway answers POST /v3/watch with a response that stays open and
 * carries one JSON message per line. When the stream breaks (the member
 * died, lost its leader: "Grpc-Metadata-hasleader: true" makes etcd cancel
 * the watch then, or sent something we refuse), the watch is created anew
 * on the next endpoint from the revision after the last event delivered,
 * so no event is lost or repeated. Attempts that fail back to back wait
 * 50 ms doubling to 2 s.
 */
#include "etcd.h"

#include "etcd_codec.h"
#include "etcd_priv.h"
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define WATCH_BACKOFF_MIN_MS 50
#define WATCH_BACKOFF_MAX_MS 2000

struct etcd_watch {
	struct etcd *e;
	char *key, *range_end;
	etcd_watch_fn cb;
	void *ctx;
	int64_t next_rev; /* where a new stream starts: 0 until the first is created */
	size_t endpoint;
	CURLM *multi;
	struct curl_slist *headers;
	pthread_t thread;
	atomic_bool stop;

	/* The current stream. */
	struct buf b;   /* max ETCD_MAX_RESPONSE: the part of a line not yet handled */
	int err;        /* why we cut the stream short, 0 if we did not */
	bool delivered; /* a message came: the stream was healthy */
	bool compacted;
};

static bool watch_stopping(const struct etcd_watch *w)
{
	return atomic_load(&w->stop) || atomic_load(&w->e->cancelled);
}

/* One message. 0, or a negative errno to cut the stream. */
static int watch_handle(struct etcd_watch *w, const char *line, size_t len)
{
	struct etcd_codec_watch m;
	struct etcd_watch_msg msg = { 0 };
	size_t first;
	int ret;

	ret = etcd_codec_watch_msg(line, len, &m);
	if (ret) {
		log_warnx("etcd watch: cannot decode a message", "endpoint=%s len=%zu",
			  w->e->endpoints[w->endpoint], len);
		return ret;
	}
	if (m.grpc_code) {
		ret = etcd_errno(CURLE_OK, 500, line, len);
		log_warnx("etcd watch: stream error", "endpoint=%s code=%d message=%s",
			  w->e->endpoints[w->endpoint], m.grpc_code, m.message);
		goto out;
	}
	w->delivered = true;
	if (m.compact_revision) {
		w->compacted = true;
		msg.status = ETCD_WATCH_COMPACTED;
		msg.revision = m.revision;
		msg.compact_revision = m.compact_revision;
		w->cb(&msg, w->ctx);
		ret = -ESTALE;
		goto out;
	}
	if (m.canceled) { /* e.g. the member lost its leader */
		ret = -EAGAIN;
		goto out;
	}
	if (m.created && !w->next_rev)
		w->next_rev = m.revision + 1;
	/* A new stream starts at next_rev: nothing before it is news. */
	for (first = 0; first < m.n && m.events[first].kv.mod_revision < w->next_rev; first++)
		;
	if (first < m.n) {
		msg.status = ETCD_WATCH_EVENTS;
		msg.revision = m.revision;
		msg.events = m.events + first;
		msg.n = m.n - first;
		w->next_rev = m.events[m.n - 1].kv.mod_revision + 1;
		w->cb(&msg, w->ctx);
	}
	ret = 0;
out:
	etcd_codec_watch_free(&m);
	return ret;
}

static size_t watch_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct etcd_watch *w = userdata;
	size_t n = size * nmemb, start = 0;
	char *nl;
	int ret;

	if (w->err || watch_stopping(w))
		return 0;
	ret = buf_append(&w->b, ptr, n);
	if (ret) {
		w->err = ret == -E2BIG ? -EMSGSIZE : ret;
		return 0;
	}
	while ((nl = memchr(w->b.data + start, '\n', w->b.len - start))) {
		size_t line_len = (size_t)(nl - (w->b.data + start));

		if (line_len) {
			ret = watch_handle(w, w->b.data + start, line_len);
			if (ret) {
				w->err = ret;
				return 0;
			}
		}
		start += line_len + 1;
	}
	memmove(w->b.data, w->b.data + start, w->b.len - start);
	w->b.len -= start;
	return n;
}

/* One stream on endpoint w->endpoint until it ends. A negative errno. */
static int watch_stream(struct etcd_watch *w)
{
	CURL *h;
	CURLMsg *cm;
	CURLcode cc = CURLE_OK;
	char *body;
	long status = 0;
	bool done = false;
	int ret, running, left;

	body = etcd_codec_watch_req(w->key, w->range_end, w->next_rev);
	if (!body)
		return -errno;
	ret = -ENOMEM;
	h = curl_easy_init();
	if (!h)
		goto err_free_body;
	w->b.len = 0;
	w->b.too_big = false;
	w->err = 0;
	w->delivered = false;
	etcd_curl_setup(w->e, h, w->endpoint, "/v3/watch");
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, w->headers);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, watch_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, w);
	curl_easy_setopt(h, CURLOPT_POST, 1L);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
	/* No overall timeout: the stream is meant to last. A dead peer is
	 * found by TCP keepalive; a member cut off from its leader cancels
	 * the watch (hasleader). */
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPIDLE, 10L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPINTVL, 5L);
	if (curl_multi_add_handle(w->multi, h) != CURLM_OK)
		goto err_cleanup;
	while (!done && !watch_stopping(w)) {
		if (curl_multi_perform(w->multi, &running) != CURLM_OK)
			break;
		while ((cm = curl_multi_info_read(w->multi, &left))) {
			if (cm->msg == CURLMSG_DONE) {
				cc = cm->data.result;
				done = true;
			}
		}
		if (!done && curl_multi_poll(w->multi, NULL, 0, 1000, NULL) != CURLM_OK)
			break;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	if (watch_stopping(w))
		ret = -ECANCELED;
	else if (w->err)
		ret = w->err;
	else if (!done)
		ret = -EIO;
	else if (cc == CURLE_OK && status == 200)
		ret = -ECONNRESET; /* etcd ended the stream */
	else
		ret = etcd_errno(cc, status, w->b.data, w->b.len);
	if (ret == 0)
		ret = -EPROTO;
	curl_multi_remove_handle(w->multi, h);
err_cleanup:
	curl_easy_cleanup(h);
err_free_body:
	free(body);
	return ret;
}

static void watch_wait(struct etcd_watch *w, long ms)
{
	/* With no transfer, curl_multi_poll waits for the timeout or for
	 * curl_multi_wakeup(). */
	if (!watch_stopping(w))
		curl_multi_poll(w->multi, NULL, 0, (int)ms, NULL);
}

static void *watch_main(void *arg)
{
	struct etcd_watch *w = arg;
	long backoff = 0;
	int ret;

	while (!watch_stopping(w)) {
		ret = watch_stream(w);
		if (ret == -ECANCELED || watch_stopping(w))
			break;
		if (w->compacted)
			break; /* the caller re-lists and starts anew */
		log_warnx("etcd watch broke, resuming on the next endpoint",
			  "endpoint=%s next_revision=%lld err=%s",
			  w->e->endpoints[w->endpoint], (long long)w->next_rev, strerror(-ret));
		w->cb(&(struct etcd_watch_msg){ .status = ETCD_WATCH_RECONNECTING,
						.revision = w->next_rev ? w->next_rev - 1 : 0,
						.err = ret },
		      w->ctx);
		w->endpoint = (w->endpoint + 1) % w->e->n_endpoints;
		/* Straight on after a healthy stream; else back off. */
		if (w->delivered)
			backoff = 0;
		else
			backoff = backoff ? backoff * 2 : WATCH_BACKOFF_MIN_MS;
		if (backoff > WATCH_BACKOFF_MAX_MS)
			backoff = WATCH_BACKOFF_MAX_MS;
		if (backoff)
			watch_wait(w, backoff);
	}
	return NULL;
}

static void watch_free(struct etcd_watch *w)
{
	if (!w)
		return;
	if (w->multi)
		curl_multi_cleanup(w->multi);
	curl_slist_free_all(w->headers);
	buf_free(&w->b);
	free(w->key);
	free(w->range_end);
	free(w);
}

struct etcd_watch *etcd_watch_start(struct etcd *e, const char *key, const char *range_end,
				    int64_t start_revision, etcd_watch_fn cb, void *ctx)
{
	struct etcd_watch *w;
	struct curl_slist *hl;
	int ret;

	ret = -EINVAL;
	if (!e || !key || !key[0] || !cb || start_revision < 0)
		goto err;
	ret = -ENOMEM;
	w = calloc(1, sizeof(*w));
	if (!w)
		goto err;
	w->e = e;
	w->cb = cb;
	w->ctx = ctx;
	w->next_rev = start_revision;
	w->b.max = ETCD_MAX_RESPONSE;
	w->endpoint = atomic_load(&e->current) % e->n_endpoints;
	w->key = strdup(key);
	w->range_end = range_end ? strdup(range_end) : NULL;
	w->multi = curl_multi_init();
	w->headers = curl_slist_append(NULL, "Content-Type: application/json");
	hl = w->headers ? curl_slist_append(w->headers, "Grpc-Metadata-hasleader: true") : NULL;
	if (hl)
		w->headers = hl;
	if (!w->key || (range_end && !w->range_end) || !w->multi || !hl)
		goto err_free;
	ret = -pthread_create(&w->thread, NULL, watch_main, w);
	if (ret)
		goto err_free;
	return w;

err_free:
	watch_free(w);
err:
	errno = -ret;
	return NULL;
}

void etcd_watch_stop(struct etcd_watch *w)
{
	if (!w)
		return;
	atomic_store(&w->stop, true);
	curl_multi_wakeup(w->multi);
	pthread_join(w->thread, NULL);
	watch_free(w);
}
