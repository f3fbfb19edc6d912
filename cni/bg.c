/*
 * One operation in a child process, overlapped with the caller's work
 * (cni.h: cni_bg_start). Its result travels as the exit status: 0, or the
 * errno (every errno fits in the 8 bits of a status).
 */
#include "cni.h"

#include <errno.h>
#include <sys/wait.h>
#include <unistd.h>

void cni_bg_start(struct cni_bg *bg, int (*fn)(void *arg), void *arg)
{
	pid_t pid = fork();

	if (pid == 0) {
		int ret = fn(arg);

		_exit(ret < 0 && -ret < 256 ? -ret : ret < 0 ? EIO : 0);
	}
	bg->pid = pid > 0 ? pid : 0;
	bg->ret = 0;
	if (pid < 0)
		bg->ret = fn(arg);
}

int cni_bg_wait(struct cni_bg *bg)
{
	int status;

	if (!bg->pid)
		return bg->ret;
	while (waitpid(bg->pid, &status, 0) < 0) {
		if (errno != EINTR) {
			bg->pid = 0;
			return bg->ret = -ECHILD;
		}
	}
	bg->pid = 0;
	if (WIFEXITED(status))
		bg->ret = WEXITSTATUS(status) ? -WEXITSTATUS(status) : 0;
	else
		bg->ret = -EINTR;
	return bg->ret;
}
