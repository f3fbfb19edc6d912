/*
 * The one translation of libnl's NLE_* codes into errno values, for every
 * file that talks netlink through libnl (netdev.c, wg_genl.c).
 */
#include "nlerr.h"

#include <errno.h>
#include <stddef.h>

#include <netlink/errno.h>

static const struct {
	int nle;
	int err;
} nle_errno_map[] = {
	{ NLE_INTR, EINTR },
	{ NLE_BAD_SOCK, EBADF },
	{ NLE_AGAIN, EAGAIN },
	{ NLE_NOMEM, ENOMEM },
	{ NLE_EXIST, EEXIST },
	{ NLE_INVAL, EINVAL },
	{ NLE_RANGE, ERANGE },
	{ NLE_MSGSIZE, EMSGSIZE },
	{ NLE_OPNOTSUPP, EOPNOTSUPP },
	{ NLE_AF_NOSUPPORT, EAFNOSUPPORT },
	{ NLE_OBJ_NOTFOUND, ENOENT },
	{ NLE_NOATTR, EINVAL },
	{ NLE_MISSING_ATTR, EINVAL },
	{ NLE_AF_MISMATCH, EINVAL },
	{ NLE_SEQ_MISMATCH, EPROTO },
	{ NLE_MSG_OVERFLOW, EMSGSIZE },
	{ NLE_MSG_TRUNC, EMSGSIZE },
	{ NLE_NOADDR, EADDRNOTAVAIL },
	{ NLE_SRCRT_NOSUPPORT, EOPNOTSUPP },
	{ NLE_MSG_TOOSHORT, EPROTO },
	{ NLE_MSGTYPE_NOSUPPORT, EOPNOTSUPP },
	{ NLE_OBJ_MISMATCH, EINVAL },
	{ NLE_NOCACHE, ENOENT },
	{ NLE_BUSY, EBUSY },
	{ NLE_PROTO_MISMATCH, EPROTONOSUPPORT },
	{ NLE_NOACCESS, EACCES },
	{ NLE_PERM, EPERM },
	{ NLE_PKTLOC_FILE, ENOENT },
	{ NLE_PARSE_ERR, EPROTO },
	{ NLE_NODEV, ENODEV },
	{ NLE_IMMUTABLE, EPERM },
	{ NLE_DUMP_INTR, EINTR },
	{ NLE_ATTRSIZE, EMSGSIZE },
};

/* libnl's NLE_* (negative or positive) -> negative errno; 0 stays 0. */
int nlerr_errno(int nle)
{
	size_t i;

	if (nle == 0)
		return 0;
	if (nle < 0)
		nle = -nle;
	for (i = 0; i < sizeof(nle_errno_map) / sizeof(nle_errno_map[0]); i++)
		if (nle_errno_map[i].nle == nle)
			return -nle_errno_map[i].err;
	return -EIO;
}
