/*
 * Prometheus text exposition format 0.0.4 writer.
 *
 *   struct prom *p = prom_new();
 *   prom_family(p, "wgcni_nodes", PROM_GAUGE, "Registered nodes.");
 *   prom_sample(p, 3, NULL);
 *   prom_family(p, "wgcni_subnets", PROM_GAUGE, "Subnets by state.");
 *   prom_sample(p, 2, "state", "used", NULL);
 *   const char *text = prom_text(p, &len);
 *
 * Label values are escaped (backslash, double quote, newline). A family's
 * HELP and TYPE lines are written once, before its samples.
 */
#ifndef WGCNI_PROM_H
#define WGCNI_PROM_H

#include <stddef.h>

enum prom_type { PROM_COUNTER, PROM_GAUGE };

struct prom;

struct prom *prom_new(void);
void prom_free(struct prom *p);
int prom_family(struct prom *p, const char *name, enum prom_type type,
		const char *help);
/* Label name/value pairs as const char * arguments, ended by NULL. */
int prom_sample(struct prom *p, double value, ...) __attribute__((sentinel));
/* The text so far (owned by p), NULL if an earlier call failed (ENOMEM). */
const char *prom_text(const struct prom *p, size_t *len);
/* Escape a label value into out; returns out or NULL if too small. */
char *prom_escape_label(const char *value, char *out, size_t outlen);

#endif
