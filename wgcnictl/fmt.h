/*
 * Output for people: text tables with aligned columns and human-readable
 * units, times and lists (wgcnictl's tables). Pure functions of their
 * arguments, so they are unit-tested without a daemon.
 */
#ifndef WGCNI_FMT_H
#define WGCNI_FMT_H

#include <stddef.h>
#include <stdio.h>
#include <time.h>

#define FMT_TABLE_MAX_COLS 16

struct fmt_table;
/* Column headers; a header starting with '>' is right-aligned (the '>' is
 * not printed). NULL-terminated. NULL with errno = E2BIG (more than
 * FMT_TABLE_MAX_COLS columns) or ENOMEM. */
struct fmt_table *fmt_table_new(const char *header, ...) __attribute__((sentinel));
void fmt_table_free(struct fmt_table *t);
/* One row, one const char * per column (copied; NULL or "" prints as "-").
 * 0 or -ENOMEM. */
int fmt_table_add(struct fmt_table *t, ...);
/* Two spaces between columns, no trailing blanks. 0 or -EIO. */
int fmt_table_print(const struct fmt_table *t, FILE *f);
size_t fmt_table_rows(const struct fmt_table *t);

/* "512 B", "1.5 KiB", "12.0 MiB" ... up to PiB; negative counts as 0. */
char *fmt_bytes(double bytes, char *out, size_t outlen);
/* "12s ago" (under 2 minutes), "3m ago" (under 2 hours), "5h ago" (under 2
 * days), "2d ago"; "never" for t == 0; a t ahead of now is "0s ago". */
char *fmt_ago(time_t now, time_t t, char *out, size_t outlen);
/* RFC 3339 ("2026-11-22T22:05:25Z", fractions, "+02:00" offsets, a space for
 * the 'T') -> *t. 0 or -EINVAL (*t untouched). */
int fmt_parse_rfc3339(const char *s, time_t *t);
/* Join v[0..n) with sep into out (cut to fit); "-" when n == 0. */
char *fmt_join(char *const *v, size_t n, const char *sep, char *out, size_t outlen);

#endif
