/*
 * libFuzzer harness for the kernel backend's reply parser
 * (wg_genl_parse_device): the input is the generic netlink payload of a
 * WG_CMD_GET_DEVICE reply, as a kernel (or anything able to write to our
 * netlink socket) would send it. Whatever parses must hold only prefixes
 * valid for their family. `make fuzz` builds and runs it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <netlink/msg.h>

#include "wg.h"
#include "wg_genl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t hdr = NLMSG_HDRLEN + GENL_HDRLEN;
	struct nlmsghdr *nlh;
	struct wg_device *dev;
	struct nl_msg *msg;

	if (size > 65536)
		return 0;
	nlh = calloc(1, hdr + size);
	if (!nlh)
		return 0;
	nlh->nlmsg_len = (uint32_t)(hdr + size);
	memcpy((uint8_t *)nlh + hdr, data, size);
	msg = nlmsg_convert(nlh);
	free(nlh);
	if (!msg)
		return 0;
	dev = calloc(1, sizeof(*dev));
	if (dev && wg_genl_parse_device(msg, dev) == 0) {
		for (size_t p = 0; p < dev->n_peers; p++)
			for (size_t a = 0; a < dev->peers[p].n_allowedips; a++)
				if (dev->peers[p].allowedips[a].prefixlen >
				    ipaddr_bits(&dev->peers[p].allowedips[a].addr))
					abort();
	}
	wg_device_free(dev);
	nlmsg_free(msg);
	return 0;
}
