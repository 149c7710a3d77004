// SPDX-License-Identifier: Apache-2.0
/* The grow-array helper (array.h). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "array.h"

int kj_grow_(void *arrayp, size_t *cap, size_t need, size_t size,
	     size_t first)
{
	size_t c = *cap ? *cap : (first ? first : 1);
	void *p, *np;

	if (need <= *cap)
		return 0;
	while (c < need) {
		if (c > SIZE_MAX / 2)
			return -ENOMEM;
		c *= 2;
	}
	/* Refused here, not by reallocarray: sanitizers abort on it. */
	if (!size || c > SIZE_MAX / size)
		return -ENOMEM;
	/*
	 * arrayp points at a T *, not a void *: copy the pointer's bytes
	 * rather than write through a void ** (an aliasing violation).
	 */
	memcpy(&p, arrayp, sizeof(p));
	np = reallocarray(p, c, size);
	if (!np)
		return -ENOMEM;
	memcpy(arrayp, &np, sizeof(np));
	*cap = c;
	return 0;
}
