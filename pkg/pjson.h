/*
 * Generic proto3 JSON mapping driven by protobuf-c descriptors (jansson).
 *
 * Encoding: lowerCamelCase field names; fields at their default value are
 * omitted; 64-bit integers as decimal strings; bytes as standard base64;
 * enums by name.
 * Decoding is strict: the input must be a JSON object; unknown fields,
 * duplicate keys, wrong JSON types, out-of-range numbers and bad base64 are
 * errors. Both the lowerCamelCase and the original proto field name are
 * accepted; null means "default". The decoded message is allocated with the
 * default protobuf-c allocator: free it with
 * protobuf_c_message_free_unpacked(msg, NULL).
 */
#ifndef WGCNI_PJSON_H
#define WGCNI_PJSON_H

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>
#include <stddef.h>

/* New reference, or NULL (ENOMEM). */
json_t *pjson_encode(const ProtobufCMessage *msg);
/* Compact JSON text (malloc'd), or NULL. */
char *pjson_encode_string(const ProtobufCMessage *msg);

/* NULL with errno = EINVAL and a message naming the field in err. */
ProtobufCMessage *pjson_decode(const ProtobufCMessageDescriptor *desc,
			       const json_t *json, char *err, size_t errlen);
/* Parses text first (rejecting duplicate keys). Same contract. */
ProtobufCMessage *pjson_decode_buf(const ProtobufCMessageDescriptor *desc,
				   const char *buf, size_t len, char *err,
				   size_t errlen);

/* "node_name" -> "nodeName" into out (at least strlen(name)+1). */
void pjson_camel_name(const char *name, char *out, size_t outlen);

#endif
