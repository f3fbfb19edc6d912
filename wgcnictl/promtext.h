/*
 * A reader for the Prometheus text exposition format 0.0.4, the samples
 * only: comments and HELP/TYPE lines are skipped, every sample line is
 * checked (metric name syntax, quoted and escaped label values, a number, an
 * optional integer timestamp) and a malformed one is an error, not silently
 * dropped. Bounds: PROMTEXT_MAX_LINE bytes per line, PROMTEXT_MAX_LABELS labels per
 * sample.
 */
#ifndef WGCNI_PROMTEXT_H
#define WGCNI_PROMTEXT_H

#include <stddef.h>

#define PROMTEXT_MAX_LINE (64 * 1024)
#define PROMTEXT_MAX_LABELS 32

struct promtext_label {
	char *name;
	char *value;
};

struct promtext_series {
	char *name;
	struct promtext_label *labels;
	size_t n_labels;
	double value;
};

struct promtext {
	struct promtext_series *series;
	size_t n;
};

/* Parse len bytes of text (no NUL needed). 0, or -EINVAL with the 1-based
 * number of the offending line in *line, or -ENOMEM; out is empty on
 * error. Free with promtext_free. */
int promtext_parse(const char *text, size_t len, struct promtext *out, size_t *line);
/* Frees the series and empties out. Accepts NULL. */
void promtext_free(struct promtext *out);
/* The value of label name in s, or NULL. */
const char *promtext_label(const struct promtext_series *s, const char *name);

#endif
