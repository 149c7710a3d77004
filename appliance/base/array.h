/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The one grow-array helper: a heap array with a capacity that doubles.
 *
 *	if (kj_grow(&q->v, &q->cap, q->n + 1, 256)) {
 *		kj_err("keeper: out of memory for answers");
 *		return -ENOMEM;
 *	}
 *	q->v[q->n++] = r;
 *
 * It does not log: the caller knows what the array holds and says it once.
 */
#ifndef KINJECT_ARRAY_H
#define KINJECT_ARRAY_H

#include <stddef.h>

#include "kinject.h"

/*
 * Make room for need elements of size bytes in *arrayp (a pointer to the
 * array pointer), growing *cap from first (> 0) by doubling.  0 on success
 * (also when *cap already suffices); -ENOMEM with *arrayp and *cap
 * untouched when the allocation fails or the size would overflow.
 */
KJ_MUST_CHECK int kj_grow_(void *arrayp, size_t *cap, size_t need,
			   size_t size, size_t first);

/*
 * The common case, room already there, stays inline: the Merkle tree and
 * the sim's timer heap call this once per push on their hot paths.
 */
static inline KJ_MUST_CHECK int kj_grow_inline(void *arrayp, size_t *cap,
					       size_t need, size_t size,
					       size_t first)
{
	if (need <= *cap)
		return 0;
	return kj_grow_(arrayp, cap, need, size, first);
}

#define kj_grow(arrayp, capp, need, first) \
	kj_grow_inline((arrayp), (capp), (need), sizeof(**(arrayp)), (first))

#endif
