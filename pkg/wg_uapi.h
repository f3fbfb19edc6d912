/*
 * Internals of the userspace (UAPI) backend shared with wg.c and the unit
 * tests; the public face is in wg.h.
 */
#ifndef WGCNI_WG_UAPI_H
#define WGCNI_WG_UAPI_H

#include <stddef.h>

/* Path of name's UAPI socket (<dir>/<name>.sock) into buf. 0, -EINVAL for
 * a bad name, -ENAMETOOLONG. */
int wg_uapi_sock_path(const char *name, char *buf, size_t len);

#endif
