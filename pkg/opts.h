/*
 * Command-line options with environment fallback: every long option --foo-bar
 * can also come from WGCNI_FOO_BAR. The environment is applied first, the
 * command line after it, so the command line wins. For options without an
 * argument the variable must be 1/true/yes (applied) or 0/false/no/empty
 * (ignored); anything else is an error. For options with an argument an
 * empty variable counts as unset. Options with a flag pointer set *flag from
 * the environment too. A repeatable option given by environment arrives as
 * one value; the caller splits it on commas if it wants (opts_split).
 * shortopts may start with '+' to stop at the first operand (subcommands).
 */
#ifndef WGCNI_OPTS_H
#define WGCNI_OPTS_H

#include <getopt.h>
#include <stddef.h>
#include <stdint.h>

/* Called for each option found: val as in struct option, arg or NULL.
 * Return 0, or negative errno with a message in err to stop parsing. */
typedef int (*opts_apply_fn)(int val, const char *arg, void *ctx, char *err,
			     size_t errlen);

/*
 * Parse. Returns the index of the first non-option argument (>= 1), or -1
 * with a message in err ("unknown option '--x'", "option '--x' needs a
 * value", "option '--x' takes no value", a bad boolean variable, or the
 * apply callback's; a callback refusing without a message gets "invalid
 * value for --x: \"v\""). Prints nothing. Resets getopt (optind = 0), so
 * it can run more than once per process.
 */
int opts_parse(int argc, char **argv, const char *shortopts,
	       const struct option *longopts, opts_apply_fn apply, void *ctx,
	       char *err, size_t errlen);

/* A decimal integer option value in [min, max]: no sign, no spaces, no
 * trailing text. 0 and *out set, else -EINVAL (*out untouched). */
int opts_parse_ulong(const char *arg, unsigned long min, unsigned long max,
		     unsigned long *out);

/* A duration: "0", or one or more <digits><unit> with units ms, s, m, h, d
 * ("10m", "1h30m", "500ms"); bare digits are seconds ("30"). *ms set to the
 * total in milliseconds and 0, else -EINVAL (syntax) or -ERANGE (overflow),
 * *ms untouched. */
int opts_parse_duration(const char *arg, uint64_t *ms);

/* "WGCNI_" + upper(name) with '-' -> '_' into out. */
void opts_env_name(const char *longname, char *out, size_t outlen);

/* Split s on commas into a NULL-terminated malloc'd array of malloc'd
 * trimmed strings (empty items dropped); free with opts_strv_free. */
char **opts_split(const char *s);
void opts_strv_free(char **v);

#endif
