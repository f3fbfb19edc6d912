#include "curlx.h"

#include <errno.h>

static int curlx_progress(void *userdata, curl_off_t dltotal, curl_off_t dlnow,
			  curl_off_t ultotal, curl_off_t ulnow)
{
	const atomic_bool *cancelled = userdata;

	return atomic_load(cancelled) ? 1 : 0;
}

void curlx_setup(CURL *h, const char *url, const char *ca_file, const atomic_bool *cancelled)
{
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, curlx_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, (void *)cancelled);
	if (ca_file)
		curl_easy_setopt(h, CURLOPT_CAINFO, ca_file);
}

int curlx_errno(CURLcode cc)
{
	switch (cc) {
	case CURLE_OK:
		return 0;
	case CURLE_COULDNT_CONNECT:
		return -ECONNREFUSED;
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return -EHOSTUNREACH;
	case CURLE_GOT_NOTHING:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_PARTIAL_FILE:
		return -ECONNRESET;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	case CURLE_WRITE_ERROR: /* our write callback said no */
		return -EMSGSIZE;
	case CURLE_URL_MALFORMAT:
		return -EINVAL;
	case CURLE_ABORTED_BY_CALLBACK:
		return -ECANCELED;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
		return -EKEYREJECTED;
	default:
		return -EIO;
	}
}
