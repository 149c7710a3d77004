/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the line operator sees during `kinject run' (SPEC.md §4): on a
 * terminal one live line (bar, done/quantity, rate, ETA, failures by
 * reason); otherwise a plain line every few seconds.  And the summary at
 * the end, as text and as --json-summary.
 */
#ifndef KINJECT_PROGRESS_H
#define KINJECT_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

#include "keeper/keeper.h"

struct kj_progress {
	bool tty;
	uint64_t last_plain_ms;
	uint64_t start_ok;     /* ok count when this run started (resume) */
	bool drew_line;
};

void kj_progress_init(struct kj_progress *p, uint64_t start_ok);
void kj_progress_update(struct kj_progress *p,
			const struct kj_keeper_stats *st);
/* Ends the live line, if any. */
void kj_progress_finish(struct kj_progress *p);

struct kj_run_summary {
	const char *job;
	const char *state_dir;
	const char *outcome;   /* completed|max_failed|stopped|exhausted|error */
	int exit_code;
	uint64_t fsyncs;
	uint64_t checkpoints;
	uint64_t quote_ms_max;
	uint64_t tree_size;
	const char *secret_memory;
};

void kj_summary_print(const struct kj_run_summary *s,
		      const struct kj_keeper_stats *st);
KJ_MUST_CHECK int kj_summary_write_json(const char *path,
					const struct kj_run_summary *s,
					const struct kj_keeper_stats *st);

#endif
