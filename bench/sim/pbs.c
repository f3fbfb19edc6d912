#include "pbs.h"

#include <errno.h>
#include <string.h>

enum { ST_TAG, ST_VAL, ST_LEN, ST_BYTES, ST_SKIP };

const struct pbs_fields pbs_watch_fields = { .revision = 1, .full = 2, .peers = 3, .removed = 4 };
const struct pbs_fields pbs_list_fields = { .revision = 2, .full = 0, .peers = 1, .removed = 0 };

void pbs_init(struct pbs *s, const struct pbs_fields *f)
{
	s->f = f;
	s->st = ST_TAG;
	s->wt = 0;
	s->shift = 0;
	s->field = 0;
	s->have = 0;
	s->v = 0;
	s->need = 0;
	s->revision = 0;
	s->full = false;
	s->n_peers = 0;
	s->n_removed = 0;
}

/* A varint of a complete buffer; 0 or -EBADMSG. */
static int pbs_get_varint(const uint8_t *buf, size_t len, size_t *i, uint64_t *v)
{
	uint64_t r = 0;

	for (unsigned int shift = 0; shift < 64; shift += 7) {
		uint8_t b;

		if (*i >= len)
			return -EBADMSG;
		b = buf[(*i)++];
		if (shift == 63 && (b & 0x7e))
			return -EBADMSG;
		r |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80)) {
			*v = r;
			return 0;
		}
	}
	return -EBADMSG;
}

int pbs_peer(const uint8_t *buf, size_t len, const char **name, size_t *name_len,
	     const char **key, size_t *key_len)
{
	size_t i = 0;

	*name = *key = "";
	*name_len = *key_len = 0;
	while (i < len) {
		uint64_t tag, v;

		if (pbs_get_varint(buf, len, &i, &tag) < 0 || (tag >> 3) == 0)
			return -EBADMSG;
		switch (tag & 7) {
		case 0:
			if (pbs_get_varint(buf, len, &i, &v) < 0)
				return -EBADMSG;
			if ((tag >> 3) <= 4)
				return -EBADMSG; /* all of Peer's fields are strings */
			break;
		case 1:
		case 5:
			v = (tag & 7) == 1 ? 8 : 4;
			if ((tag >> 3) <= 4 || len - i < v)
				return -EBADMSG;
			i += v;
			break;
		case 2:
			if (pbs_get_varint(buf, len, &i, &v) < 0 || v > len - i)
				return -EBADMSG;
			if ((tag >> 3) == 1) {
				*name = (const char *)buf + i;
				*name_len = v;
			} else if ((tag >> 3) == 2) {
				*key = (const char *)buf + i;
				*key_len = v;
			}
			i += v;
			break;
		default:
			return -EBADMSG;
		}
	}
	return 0;
}

static int pbs_payload(struct pbs *s, const uint8_t *p, size_t n, const struct pbs_sink *k,
		       void *ctx)
{
	const char *name, *key;
	size_t name_len, key_len;

	if (s->field == s->f->peers) {
		if (pbs_peer(p, n, &name, &name_len, &key, &key_len) < 0)
			return -EBADMSG;
		s->n_peers++;
		k->peer(ctx, name, name_len, key, key_len);
	} else {
		s->n_removed++;
		k->removed(ctx, (const char *)p, n);
	}
	s->st = ST_TAG;
	return 0;
}

static bool pbs_wanted_bytes(const struct pbs *s)
{
	return (s->f->peers && s->field == s->f->peers) ||
	       (s->f->removed && s->field == s->f->removed);
}

static bool pbs_wanted_varint(const struct pbs *s)
{
	return (s->f->revision && s->field == s->f->revision) ||
	       (s->f->full && s->field == s->f->full);
}

static int pbs_varint_done(struct pbs *s, uint64_t v, const struct pbs_sink *k, void *ctx)
{
	switch (s->st) {
	case ST_TAG:
		s->field = (uint32_t)(v >> 3);
		s->wt = v & 7;
		if ((v >> 3) == 0 || (v >> 3) > UINT32_MAX)
			return -EBADMSG;
		if ((pbs_wanted_bytes(s) && s->wt != 2) || (pbs_wanted_varint(s) && s->wt != 0))
			return -EBADMSG;
		switch (s->wt) {
		case 0:
			s->st = ST_VAL;
			return 0;
		case 2:
			s->st = ST_LEN;
			return 0;
		case 1:
		case 5:
			s->need = s->wt == 1 ? 8 : 4;
			s->st = ST_SKIP;
			return 0;
		default:
			return -EBADMSG;
		}
	case ST_VAL:
		if (s->field == s->f->revision) {
			s->revision = v;
		} else if (s->f->full && s->field == s->f->full) {
			if (v && (s->n_peers || s->n_removed))
				return -EBADMSG;
			s->full = v != 0;
			if (s->full)
				k->full(ctx);
		}
		s->st = ST_TAG;
		return 0;
	case ST_LEN:
		if (pbs_wanted_bytes(s)) {
			if (v > PBS_CARRY)
				return -EMSGSIZE;
			s->need = v;
			s->have = 0;
			s->st = ST_BYTES;
			return v ? 0 : pbs_payload(s, s->carry, 0, k, ctx);
		}
		s->need = v;
		s->st = v ? ST_SKIP : ST_TAG;
		return 0;
	}
	return -EBADMSG;
}

int pbs_feed(struct pbs *s, const uint8_t *p, size_t n, const struct pbs_sink *k, void *ctx)
{
	size_t i = 0;
	int ret;

	while (i < n) {
		size_t avail = n - i, take;
		uint8_t b;

		switch (s->st) {
		case ST_TAG:
		case ST_VAL:
		case ST_LEN:
			b = p[i++];
			if (s->shift >= 64 || (s->shift == 63 && (b & 0x7e)))
				return -EBADMSG;
			s->v |= (uint64_t)(b & 0x7f) << s->shift;
			s->shift += 7;
			if (b & 0x80)
				break;
			{
				uint64_t v = s->v;

				s->v = 0;
				s->shift = 0;
				ret = pbs_varint_done(s, v, k, ctx);
				if (ret < 0)
					return ret;
			}
			break;
		case ST_BYTES:
			if (!s->have && avail >= s->need) {
				/* The common case: the whole peer is in this read. */
				take = (size_t)s->need;
				ret = pbs_payload(s, p + i, take, k, ctx);
				i += take;
				if (ret < 0)
					return ret;
				break;
			}
			take = (size_t)s->need - s->have;
			if (take > avail)
				take = avail;
			memcpy(s->carry + s->have, p + i, take);
			s->have += (uint32_t)take;
			i += take;
			if (s->have == s->need) {
				ret = pbs_payload(s, s->carry, s->have, k, ctx);
				s->have = 0;
				if (ret < 0)
					return ret;
			}
			break;
		case ST_SKIP:
			take = avail < s->need ? avail : (size_t)s->need;
			s->need -= take;
			i += take;
			if (!s->need)
				s->st = ST_TAG;
			break;
		default:
			return -EBADMSG;
		}
	}
	return 0;
}

int pbs_end(const struct pbs *s)
{
	return s->st == ST_TAG && s->shift == 0 ? 0 : -EBADMSG;
}
