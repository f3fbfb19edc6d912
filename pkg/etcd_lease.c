/* Leases (etcd.h): one request each, through etcd_request's failover. */
#include "etcd.h"

#include "etcd_codec.h"
#include "etcd_priv.h"

#include <errno.h>
#include <stdlib.h>

int etcd_lease_grant(struct etcd *e, int64_t ttl, int64_t *id, int64_t *granted_ttl)
{
	struct buf b;
	int64_t got_id = 0, got_ttl = 0;
	int ret;

	*id = 0;
	if (!e)
		return -EINVAL;
	/* A grant retried elsewhere at worst leaves a lease that expires. */
	ret = etcd_request(e, "/v3/lease/grant", etcd_codec_lease_grant_req(ttl), true, &b);
	if (!ret)
		ret = etcd_codec_lease_grant_resp(b.data, b.len, &got_id, &got_ttl);
	if (!ret) {
		*id = got_id;
		if (granted_ttl)
			*granted_ttl = got_ttl;
	}
	free(b.data);
	return ret;
}

int etcd_lease_keepalive(struct etcd *e, int64_t id, int64_t *ttl)
{
	struct buf b;
	int64_t got_id = 0, got_ttl = 0;
	int code, ret;

	if (!e)
		return -EINVAL;
	/* One message on the gateway's keepalive stream, which then ends;
	 * renewing twice is harmless, so it fails over like a read. */
	ret = etcd_request(e, "/v3/lease/keepalive", etcd_codec_lease_id_req(id), false, &b);
	if (!ret && etcd_codec_error(b.data, b.len, &code, NULL, 0) == 0 && code)
		ret = etcd_errno(CURLE_OK, 500, b.data, b.len); /* the stream's error form */
	else if (!ret)
		ret = etcd_codec_lease_keepalive_resp(b.data, b.len, &got_id, &got_ttl);
	if (!ret && got_id != id)
		ret = -EPROTO;
	if (!ret && !got_ttl)
		ret = -ENOENT;
	if (!ret && ttl)
		*ttl = got_ttl;
	free(b.data);
	return ret;
}

int etcd_lease_revoke(struct etcd *e, int64_t id)
{
	struct buf b;
	int ret;

	if (!e)
		return -EINVAL;
	ret = etcd_request(e, "/v3/kv/lease/revoke", etcd_codec_lease_id_req(id), true, &b);
	if (!ret)
		ret = etcd_codec_header_resp(b.data, b.len, NULL);
	free(b.data);
	return ret;
}
