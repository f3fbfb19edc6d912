/*
 * libFuzzer harness for the Prometheus text reader wgcnictl uses on the node
 * manager's /metrics (wgcnictl/promtext.c) and for its RFC 3339 parser
 * (wgcnictl/fmt.c). `make fuzz` builds and runs it.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fmt.h"
#include "promtext.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct promtext s;
	size_t line;
	char *copy;
	time_t t;

	if (promtext_parse((const char *)data, size, &s, &line) == 0) {
		for (size_t i = 0; i < s.n; i++)
			for (size_t j = 0; j < s.series[i].n_labels; j++)
				promtext_label(&s.series[i], s.series[i].labels[j].name);
		promtext_free(&s);
	}
	copy = malloc(size + 1);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	copy[size] = '\0';
	fmt_parse_rfc3339(copy, &t);
	free(copy);
	return 0;
}
