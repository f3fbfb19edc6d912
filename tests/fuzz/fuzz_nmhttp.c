/*
 * libFuzzer harness for the plugin's HTTP/1.1 answer parser (cni/nmhttp.c),
 * which reads what arrives on the node manager's socket: any input, cut at
 * any point, either asks for more, fails, or yields a body within the
 * bound and no longer than the input. `make fuzz` builds and runs it.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "nmhttp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* A copy of exactly size bytes: the parser must not read past it. */
	char *in = malloc(size ? size : 1);
	size_t cut = size ? data[0] % (size + 1) : 0;

	if (!in)
		return 0;
	memcpy(in, data, size);
	for (int pass = 0; pass < 3; pass++) {
		size_t len = pass == 0 ? size : cut;
		struct buf body = { .max = 1 << 16 };
		bool keep = false;
		int status = -1;
		int ret = nmh_parse(in, len, pass == 2, &status, &keep, &body);

		if (ret > 1 || (ret == 1 && (status < 200 || status > 999 || body.len > len)))
			abort();
		if (ret != 1 && body.len && !body.data)
			abort();
		buf_free(&body);
	}
	free(in);
	return 0;
}
