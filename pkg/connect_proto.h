/*
 * The Connect protocol as client (rpc.c) and server (connect*.c) both speak
 * it: unary calls only, over HTTP/1.1.
 *
 *   POST /<package>.<Service>/<Method>
 *   Content-Type: application/proto | application/json   (server: else 415)
 *   Connect-Timeout-Ms: <at most 10 digits>               (optional)
 *   -> 200 and the response message in the request's encoding, or
 *   -> the code's HTTP status + {"code":"invalid_argument","message":"..."}
 *
 * A request body may have at most CONNECT_MAX_BODY bytes. Nothing here
 * needs an HTTP library: the plugin and the CLI link this file, not the
 * server.
 */
#ifndef WGCNI_CONNECT_PROTO_H
#define WGCNI_CONNECT_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define CONNECT_MAX_BODY (1024 * 1024)

#define CONNECT_CTYPE_PROTO "application/proto"
#define CONNECT_CTYPE_JSON "application/json"
#define CONNECT_TIMEOUT_HEADER "Connect-Timeout-Ms"

enum connect_code {
	CONNECT_OK = 0,
	CONNECT_INVALID_ARGUMENT,  /* 400 */
	CONNECT_UNAUTHENTICATED,   /* 401 */
	CONNECT_PERMISSION_DENIED, /* 403 */
	CONNECT_NOT_FOUND,         /* 404 */
	CONNECT_ALREADY_EXISTS,    /* 409 */
	CONNECT_FAILED_PRECONDITION, /* 412 */
	CONNECT_RESOURCE_EXHAUSTED, /* 429 */
	CONNECT_INTERNAL,          /* 500 */
	CONNECT_UNAVAILABLE,       /* 503 */
	CONNECT_UNIMPLEMENTED,     /* 404 (unknown method: path not routed) */
	CONNECT_CODE_COUNT,
};

const char *connect_code_name(enum connect_code code); /* "invalid_argument" */
int connect_code_http_status(enum connect_code code);
/* Name -> code, CONNECT_INTERNAL when unknown. */
enum connect_code connect_code_from_name(const char *name);
/* The first error code with this HTTP status (404: CONNECT_NOT_FOUND),
 * CONNECT_INTERNAL when none has it. */
enum connect_code connect_code_from_http_status(int status);

enum connect_encoding { CONNECT_ENC_PROTO, CONNECT_ENC_JSON };

/* "application/json; charset=utf-8" -> CONNECT_ENC_JSON; -1 when NULL or
 * neither encoding. */
int connect_encoding_parse(const char *ctype);

/* A Connect-Timeout-Ms value: 1 to 10 digits. 0 or -EINVAL. */
int connect_timeout_parse(const char *value, uint64_t *ms);

/* The error body {"code":"...","message":"..."}, malloc'd; NULL when out
 * of memory or message is not UTF-8. */
char *connect_error_encode(enum connect_code code, const char *message);
/* Reads an error answer with this HTTP status: the body's code when it
 * names one (an unknown name is CONNECT_INTERNAL), else the status's;
 * the body's message, else "no error message", into msg. */
enum connect_code connect_error_decode(const char *body, size_t len, int status,
				       char *msg, size_t msglen);

#endif
