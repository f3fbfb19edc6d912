#include "prefixalloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Free child indices first..last, both inclusive. */
struct range {
	uint64_t first, last;
};

/*
 * The free ranges live in r[head..n), sorted and never touching (adjacent
 * ranges are merged). Allocation takes r[head].first and drops an emptied
 * front range by moving head, so allocating from the front never moves
 * memory.
 */
struct prefixalloc {
	struct ipnet parent;
	unsigned int childlen;
	uint64_t count, used;
	struct range *r;
	size_t head, n, cap;
};

struct prefixalloc *prefixalloc_new(const struct ipnet *parent, unsigned int childlen)
{
	struct prefixalloc *pa;

	if (!parent || (parent->addr.family != AF_INET && parent->addr.family != AF_INET6) ||
	    parent->prefixlen > ipaddr_bits(&parent->addr) ||
	    childlen < parent->prefixlen || childlen > ipaddr_bits(&parent->addr)) {
		errno = EINVAL;
		return NULL;
	}
	pa = calloc(1, sizeof(*pa));
	if (!pa)
		return NULL;
	pa->cap = 8;
	pa->r = calloc(pa->cap, sizeof(*pa->r));
	if (!pa->r) {
		free(pa);
		return NULL;
	}
	pa->parent = *parent;
	ipnet_mask(&pa->parent);
	pa->childlen = childlen;
	pa->count = ipnet_child_count(&pa->parent, childlen);
	pa->r[0].first = 0;
	pa->r[0].last = pa->count - 1;
	pa->n = 1;
	return pa;
}

void prefixalloc_free(struct prefixalloc *pa)
{
	if (!pa)
		return;
	free(pa->r);
	free(pa);
}

/* First position in r[head..n) whose range ends at or after idx. */
static size_t find(const struct prefixalloc *pa, uint64_t idx)
{
	size_t lo = pa->head, hi = pa->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (pa->r[mid].last < idx)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void remove_at(struct prefixalloc *pa, size_t pos)
{
	if (pos == pa->head)
		pa->head++;
	else {
		memmove(&pa->r[pos], &pa->r[pos + 1], (pa->n - pos - 1) * sizeof(*pa->r));
		pa->n--;
	}
	if (pa->head == pa->n)
		pa->head = pa->n = 0;
}

/* Insert [first,last] before position pos. 0 or -ENOMEM. */
static int insert_at(struct prefixalloc *pa, size_t pos, uint64_t first, uint64_t last)
{
	if (pos == pa->head && pa->head > 0) {
		pa->r[--pa->head] = (struct range){ first, last };
		return 0;
	}
	if (pa->n == pa->cap) {
		if (pa->head > 0) {
			memmove(pa->r, &pa->r[pa->head], (pa->n - pa->head) * sizeof(*pa->r));
			pos -= pa->head;
			pa->n -= pa->head;
			pa->head = 0;
		} else {
			size_t cap = pa->cap * 2;
			struct range *r = reallocarray(pa->r, cap, sizeof(*r));

			if (!r)
				return -ENOMEM;
			pa->r = r;
			pa->cap = cap;
		}
	}
	memmove(&pa->r[pos + 1], &pa->r[pos], (pa->n - pos) * sizeof(*pa->r));
	pa->r[pos] = (struct range){ first, last };
	pa->n++;
	return 0;
}

int prefixalloc_alloc(struct prefixalloc *pa, struct ipnet *out)
{
	struct range *front;
	uint64_t idx;
	int ret;

	if (pa->head == pa->n)
		return -ENOSPC;
	front = &pa->r[pa->head];
	idx = front->first;
	ret = ipnet_child(&pa->parent, pa->childlen, idx, out);
	if (ret < 0)
		return ret;
	if (front->first == front->last)
		remove_at(pa, pa->head);
	else
		front->first++;
	pa->used++;
	return 0;
}

int prefixalloc_reserve_index(struct prefixalloc *pa, uint64_t idx)
{
	struct range *r;
	size_t pos;
	int ret;

	if (idx >= pa->count)
		return -EINVAL;
	pos = find(pa, idx);
	if (pos == pa->n || pa->r[pos].first > idx)
		return -EEXIST;
	r = &pa->r[pos];
	if (r->first == idx && r->last == idx)
		remove_at(pa, pos);
	else if (r->first == idx)
		r->first++;
	else if (r->last == idx)
		r->last--;
	else {
		uint64_t last = r->last;

		ret = insert_at(pa, pos + 1, idx + 1, last);
		if (ret < 0)
			return ret;
		/* insert_at may have moved the array */
		pos = find(pa, idx);
		pa->r[pos].last = idx - 1;
	}
	pa->used++;
	return 0;
}

static int release_index(struct prefixalloc *pa, uint64_t idx)
{
	bool left, right;
	size_t pos;
	int ret;

	if (idx >= pa->count)
		return -EINVAL;
	pos = find(pa, idx);
	if (pos < pa->n && pa->r[pos].first <= idx)
		return -ENOENT;
	/* idx < count <= UINT64_MAX, so idx + 1 does not wrap */
	left = pos > pa->head && pa->r[pos - 1].last + 1 == idx;
	right = pos < pa->n && pa->r[pos].first == idx + 1;
	if (left && right) {
		pa->r[pos - 1].last = pa->r[pos].last;
		remove_at(pa, pos);
	} else if (left)
		pa->r[pos - 1].last = idx;
	else if (right)
		pa->r[pos].first = idx;
	else {
		ret = insert_at(pa, pos, idx, idx);
		if (ret < 0)
			return ret;
	}
	pa->used--;
	return 0;
}

/* Index of a /childlen child of the parent, or -EINVAL. Children whose index
 * lies beyond the saturated count (past 2^64 - 1) are not managed. */
static int child_index(const struct prefixalloc *pa, const struct ipnet *child,
		       uint64_t *idx)
{
	if (!child || child->prefixlen != pa->childlen ||
	    ipnet_child_index(&pa->parent, child, idx) < 0 || *idx >= pa->count)
		return -EINVAL;
	return 0;
}

int prefixalloc_reserve(struct prefixalloc *pa, const struct ipnet *child)
{
	uint64_t idx;
	int ret = child_index(pa, child, &idx);

	return ret < 0 ? ret : prefixalloc_reserve_index(pa, idx);
}

int prefixalloc_release(struct prefixalloc *pa, const struct ipnet *child)
{
	uint64_t idx;
	int ret = child_index(pa, child, &idx);

	return ret < 0 ? ret : release_index(pa, idx);
}

bool prefixalloc_is_used(const struct prefixalloc *pa, const struct ipnet *child)
{
	uint64_t idx;
	size_t pos;

	if (child_index(pa, child, &idx) < 0)
		return false;
	pos = find(pa, idx);
	return pos == pa->n || pa->r[pos].first > idx;
}

uint64_t prefixalloc_capacity(const struct prefixalloc *pa)
{
	return pa->count;
}

uint64_t prefixalloc_used(const struct prefixalloc *pa)
{
	return pa->used;
}

const struct ipnet *prefixalloc_parent(const struct prefixalloc *pa)
{
	return &pa->parent;
}

unsigned int prefixalloc_childlen(const struct prefixalloc *pa)
{
	return pa->childlen;
}
