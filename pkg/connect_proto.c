#include "connect_proto.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const struct {
	const char *name;
	int status;
} connect_codes[CONNECT_CODE_COUNT] = {
	[CONNECT_OK] = { "ok", 200 },
	[CONNECT_INVALID_ARGUMENT] = { "invalid_argument", 400 },
	[CONNECT_UNAUTHENTICATED] = { "unauthenticated", 401 },
	[CONNECT_PERMISSION_DENIED] = { "permission_denied", 403 },
	[CONNECT_NOT_FOUND] = { "not_found", 404 },
	[CONNECT_ALREADY_EXISTS] = { "already_exists", 409 },
	[CONNECT_FAILED_PRECONDITION] = { "failed_precondition", 412 },
	[CONNECT_RESOURCE_EXHAUSTED] = { "resource_exhausted", 429 },
	[CONNECT_INTERNAL] = { "internal", 500 },
	[CONNECT_UNAVAILABLE] = { "unavailable", 503 },
	[CONNECT_UNIMPLEMENTED] = { "unimplemented", 404 },
};

const char *connect_code_name(enum connect_code code)
{
	if ((unsigned int)code >= CONNECT_CODE_COUNT)
		return "unknown";
	return connect_codes[code].name;
}

int connect_code_http_status(enum connect_code code)
{
	if ((unsigned int)code >= CONNECT_CODE_COUNT)
		return 500;
	return connect_codes[code].status;
}

enum connect_code connect_code_from_name(const char *name)
{
	for (int i = 0; name && i < CONNECT_CODE_COUNT; i++)
		if (!strcmp(name, connect_codes[i].name))
			return (enum connect_code)i;
	return CONNECT_INTERNAL;
}

enum connect_code connect_code_from_http_status(int status)
{
	for (int i = 0; i < CONNECT_CODE_COUNT; i++)
		if (i != CONNECT_OK && connect_codes[i].status == status)
			return (enum connect_code)i;
	return CONNECT_INTERNAL;
}

int connect_encoding_parse(const char *ctype)
{
	static const struct {
		const char *name;
		enum connect_encoding enc;
	} types[] = {
		{ CONNECT_CTYPE_PROTO, CONNECT_ENC_PROTO },
		{ CONNECT_CTYPE_JSON, CONNECT_ENC_JSON },
	};
	size_t len;

	if (!ctype)
		return -1;
	while (*ctype == ' ' || *ctype == '\t')
		ctype++;
	len = strcspn(ctype, "; \t");
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		if (len == strlen(types[i].name) && !strncasecmp(ctype, types[i].name, len))
			return (int)types[i].enc;
	return -1;
}

int connect_timeout_parse(const char *value, uint64_t *ms)
{
	size_t len;

	if (!value)
		return -EINVAL;
	len = strlen(value);
	/* Ten digits at most, so the value always fits 64 bits. */
	if (!len || len > 10 || strspn(value, "0123456789") != len)
		return -EINVAL;
	*ms = strtoull(value, NULL, 10);
	return 0;
}

char *connect_error_encode(enum connect_code code, const char *message)
{
	json_t *j;
	char *body;

	j = json_pack("{s:s, s:s}", "code", connect_code_name(code), "message", message);
	body = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_decref(j);
	return body;
}

enum connect_code connect_error_decode(const char *body, size_t len, int status,
				       char *msg, size_t msglen)
{
	enum connect_code code = connect_code_from_http_status(status);
	const char *name = NULL, *text = NULL;
	json_t *j = NULL;

	if (len)
		j = json_loadb(body, len, 0, NULL);
	if (j && json_unpack(j, "{s?s, s?s}", "code", &name, "message", &text) == 0 && name)
		code = connect_code_from_name(name);
	if (msglen)
		snprintf(msg, msglen, "%s", text ? text : "no error message");
	json_decref(j);
	return code;
}
