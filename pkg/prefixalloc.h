/*
 * Prefix allocator: hands out the /childlen children of a parent prefix,
 * lowest free first. Used for node subnets out of a cluster CIDR and for
 * container /32 (/128) addresses out of a node subnet.
 *
 * Free space is a sorted array of free index ranges, so allocating from the
 * front is O(1), reserving or releasing is O(log n) search plus a move of the
 * ranges behind it; an exhausted pool is -ENOSPC, never a duplicate.
 * Children are indexed 0..count-1 (count saturates at UINT64_MAX for huge
 * IPv6 spaces).
 */
#ifndef WGCNI_PREFIXALLOC_H
#define WGCNI_PREFIXALLOC_H

#include "ipnet.h"

#include <stdbool.h>
#include <stdint.h>

struct prefixalloc;

/* NULL with errno = EINVAL (childlen shorter than the parent, or longer
 * than the family) or ENOMEM. */
struct prefixalloc *prefixalloc_new(const struct ipnet *parent, unsigned int childlen);
void prefixalloc_free(struct prefixalloc *pa);

/* Lowest free child: 0 and *out, or -ENOSPC. */
int prefixalloc_alloc(struct prefixalloc *pa, struct ipnet *out);
/* Mark a specific child used: 0, -EEXIST if already used, -EINVAL if it is
 * not a /childlen child of the parent (addresses: host bits beyond childlen
 * must be zero). */
int prefixalloc_reserve(struct prefixalloc *pa, const struct ipnet *child);
int prefixalloc_reserve_index(struct prefixalloc *pa, uint64_t index);
/* Give a child back: 0, -ENOENT if it was free, -EINVAL if foreign. */
int prefixalloc_release(struct prefixalloc *pa, const struct ipnet *child);
bool prefixalloc_is_used(const struct prefixalloc *pa, const struct ipnet *child);

uint64_t prefixalloc_capacity(const struct prefixalloc *pa);
uint64_t prefixalloc_used(const struct prefixalloc *pa);
const struct ipnet *prefixalloc_parent(const struct prefixalloc *pa);
unsigned int prefixalloc_childlen(const struct prefixalloc *pa);

#endif
