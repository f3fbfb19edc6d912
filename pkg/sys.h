/* Small operating-system helpers every program here needs once. */
#ifndef WGCNI_SYS_H
#define WGCNI_SYS_H

#include <stdint.h>
#include <sys/types.h>

/* Milliseconds of CLOCK_MONOTONIC: for deadlines and durations only. */
int64_t sys_now_ms(void);
/* mkdir -p: every missing directory of path is created with exactly mode
 * (whatever the umask); an existing one is left as it is. 0 or a negative
 * errno. */
int sys_mkdir_p(const char *path, mode_t mode);
/* sys_mkdir_p of the directory that holds path. */
int sys_mkdir_parent(const char *path, mode_t mode);

#endif
