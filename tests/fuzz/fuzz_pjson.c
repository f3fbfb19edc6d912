/*
 * libFuzzer harness for the strict proto3 JSON decoder (pkg/pjson.c), in the
 * manner of wireguard-tools src/fuzz/. Not built by default:
 *
 *   clang -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined \
 *     -Ipkg -Iproto/gen tests/fuzz/fuzz_pjson.c pkg/pjson.c \
 *     proto/gen/wgcni/cluster/v1/cluster.pb-c.c proto/gen/wgcni/node/v1/node.pb-c.c \
 *     $(pkg-config --cflags --libs jansson libprotobuf-c libsodium) -o fuzz_pjson
 *   ./fuzz_pjson -max_total_time=60
 *
 * The first input byte picks the message type. Whatever decodes must encode
 * again, and that encoding must decode to the same protobuf bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pjson.h"
#include "wgcni/cluster/v1/cluster.pb-c.h"
#include "wgcni/node/v1/node.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

static const ProtobufCMessageDescriptor *const descs[] = {
	&wgcni__cluster__v1__node__descriptor,
	&wgcni__cluster__v1__list_peers_request__descriptor,
	&wgcni__cluster__v1__list_peers_response__descriptor,
	&wgcni__cluster__v1__register_key_request__descriptor,
	&wgcni__cluster__v1__register_key_response__descriptor,
	&wgcni__cluster__v1__list_nodes_response__descriptor,
	&wgcni__node__v1__node__descriptor,
	&wgcni__node__v1__allocate_iprequest__descriptor,
	&wgcni__node__v1__get_node_response__descriptor,
	&wgcni__node__v1__gcrequest__descriptor,
	&wgcni__node__v1__list_allocations_response__descriptor,
};

static uint8_t *pack(const ProtobufCMessage *m, size_t *len)
{
	uint8_t *buf;

	*len = protobuf_c_message_get_packed_size(m);
	buf = malloc(*len + 1);
	if (buf)
		protobuf_c_message_pack(m, buf);
	return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	const ProtobufCMessageDescriptor *d;
	ProtobufCMessage *m, *again;
	uint8_t *b1, *b2;
	size_t l1, l2;
	char err[256], *text;

	if (!len)
		return 0;
	d = descs[data[0] % (sizeof(descs) / sizeof(descs[0]))];
	m = pjson_decode_buf(d, (const char *)data + 1, len - 1, err, sizeof(err));
	if (!m)
		return 0;
	text = pjson_encode_string(m);
	if (!text)
		abort();
	again = pjson_decode_buf(d, text, strlen(text), err, sizeof(err));
	if (!again)
		abort();
	b1 = pack(m, &l1);
	b2 = pack(again, &l2);
	if (!b1 || !b2 || l1 != l2 || memcmp(b1, b2, l1))
		abort();
	free(b1);
	free(b2);
	free(text);
	protobuf_c_message_free_unpacked(again, NULL);
	protobuf_c_message_free_unpacked(m, NULL);
	return 0;
}
