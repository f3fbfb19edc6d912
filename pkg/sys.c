#include "sys.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

int64_t sys_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int sys_mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	size_t len = path ? strlen(path) : 0;

	if (!len)
		return -EINVAL;
	if (len >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, len + 1);
	for (char *p = buf + 1;; p++) {
		char c = *p;

		if (c != '/' && c != '\0')
			continue;
		*p = '\0';
		/* What it creates gets exactly mode, whatever the umask. */
		if (mkdir(buf, mode) == 0) {
			if (chmod(buf, mode) < 0)
				return -errno;
		} else if (errno != EEXIST) {
			return -errno;
		}
		*p = c;
		if (!c)
			return 0;
	}
}

int sys_mkdir_parent(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	size_t len = path ? strlen(path) : 0;
	char *slash;

	if (len >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path ? path : "", len + 1);
	slash = strrchr(buf, '/');
	if (!slash)
		return 0; /* in the working directory */
	if (slash == buf)
		return 0; /* in / */
	*slash = '\0';
	return sys_mkdir_p(buf, mode);
}
