/*
 * libFuzzer harness for the decoders of etcd's JSON answers, lease answers
 * and watch messages (pkg/etcd_codec.c): whatever the bytes, no crash, no leak, and a
 * refused input leaves its output empty. `make fuzz` builds and runs it.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "etcd_codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	struct etcd_kvs kvs;
	struct etcd_txn_result txn;
	struct etcd_codec_watch w;
	int64_t rev, deleted;
	char msg[64];
	int code;

	if (etcd_codec_range_resp(buf, size, &kvs, &rev) == 0) {
		for (size_t i = 0; i < kvs.n; i++)
			if (!kvs.kvs[i].key_len || kvs.kvs[i].key[kvs.kvs[i].key_len] ||
			    kvs.kvs[i].value[kvs.kvs[i].value_len])
				abort();
		etcd_kvs_free(&kvs);
	} else if (kvs.kvs || kvs.n) {
		abort();
	}
	if (etcd_codec_txn_resp(buf, size, &txn) == 0)
		etcd_txn_result_free(&txn);
	else if (txn.results || txn.n)
		abort();
	if (etcd_codec_watch_msg(buf, size, &w) == 0) {
		for (size_t i = 1; i < w.n; i++)
			if (w.events[i].kv.mod_revision < w.events[i - 1].kv.mod_revision)
				abort();
		etcd_codec_watch_free(&w);
	} else if (w.events || w.n) {
		abort();
	}
	etcd_codec_delete_resp(buf, size, &rev, &deleted);
	etcd_codec_header_resp(buf, size, &rev);
	etcd_codec_lease_grant_resp(buf, size, &rev, &deleted);
	etcd_codec_lease_keepalive_resp(buf, size, &rev, &deleted);
	etcd_codec_error(buf, size, &code, msg, sizeof(msg));
	return 0;
}
