#include "cni.h"

#include "key.h"
#include "names.h"

#include <ctype.h>
#include <errno.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int cni_fail(struct cni_err *e, unsigned int code, int ret, const char *msg,
	     const char *detailsfmt, ...)
{
	va_list ap;

	if (e->code)
		return ret;
	e->code = code;
	snprintf(e->msg, sizeof(e->msg), "%s", msg);
	e->details[0] = '\0';
	if (detailsfmt) {
		va_start(ap, detailsfmt);
		vsnprintf(e->details, sizeof(e->details), detailsfmt, ap);
		va_end(ap);
	}
	return ret;
}

static const char *const cni_versions[CNI_VERSION_COUNT] = {
	[CNI_V030] = "0.3.0",
	[CNI_V031] = "0.3.1",
	[CNI_V040] = "0.4.0",
	[CNI_V100] = "1.0.0",
	[CNI_V110] = "1.1.0",
};

int cni_version_parse(const char *s, enum cni_version *out)
{
	for (size_t i = 0; i < CNI_VERSION_COUNT; i++) {
		if (s && !strcmp(s, cni_versions[i])) {
			*out = (enum cni_version)i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *cni_version_name(enum cni_version v)
{
	return v < CNI_VERSION_COUNT ? cni_versions[v] : "?";
}

json_t *cni_versions_json(void)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < CNI_VERSION_COUNT; i++) {
		if (json_array_append_new(a, json_string(cni_versions[i]))) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

int cni_tmp_ifname(const char *containerid, const char *ifname,
		   char out[static IFNAMSIZ])
{
	return name_wg_device(containerid, ifname, out);
}
