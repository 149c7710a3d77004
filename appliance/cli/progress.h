/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the line operator and the plant see during `kinject run' (SPEC.md
 * §4).  Three forms, chosen by --log-format and whether stderr is a
 * terminal:
 *   screen  (a terminal): a status screen redrawn in place at the bottom
 *           (status.c), with the log scrolling above it, never into it;
 *   json    (default off a terminal): one JSON object per line, stable
 *           keys (docs/RUN.md "Progress and log lines"), for a log
 *           collector; log messages become {"event":"log"} lines too;
 *   text    (--log-format text off a terminal): a plain line every 5 s.
 * And the summary at the end, as text and as --json-summary.
 */
#ifndef KINJECT_PROGRESS_H
#define KINJECT_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "journal/record.h"
#include "keeper/keeper.h"

enum kj_progress_mode {
	KJ_PROGRESS_SCREEN,
	KJ_PROGRESS_TEXT,
	KJ_PROGRESS_JSON,
};

/* One programming socket as its records tell it. */
struct kj_progress_sock {
	char site[64];
	uint16_t socket;
	uint64_t ok, failed;
	enum kj_result last;   /* KJ_RES_NONE: no record yet */
	uint64_t last_ms;
	bool programming;      /* reserved (OFFER sent), no record yet */
};

struct kj_progress {
	enum kj_progress_mode mode;
	const char *job;
	uint64_t max_failed;   /* the work order's failure budget */
	uint64_t start_ok;     /* ok count when this run started (resume) */
	uint64_t last_out_ms;  /* last line (text, json) or redraw (screen) */
	/* screen */
	struct kj_progress_sock *socks;
	size_t n_socks, cap_socks;
	unsigned rows;         /* terminal rows; 0: one live line instead */
	bool region;           /* scroll region set up */
	bool drew_line;
	struct kj_keeper_stats st; /* the last stats seen, for redraws */
};

/* "text", "json" or NULL (default: screen on a terminal, else json). */
KJ_MUST_CHECK int kj_progress_mode_parse(const char *v,
					 enum kj_progress_mode *out);
void kj_progress_init(struct kj_progress *p, enum kj_progress_mode mode,
		      const char *job, uint64_t max_failed, uint64_t start_ok);
/* Every record the keeper appends (the record hook): per-socket state. */
void kj_progress_record(struct kj_progress *p, const uint8_t *jcs,
			size_t len);
/* A device got its reservation (the keeper's offered hook). */
void kj_progress_offered(struct kj_progress *p, const struct kj_record *hello);
void kj_progress_update(struct kj_progress *p,
			const struct kj_keeper_stats *st);
/* Ends the screen or the live line, if any; frees. */
void kj_progress_finish(struct kj_progress *p);

/* "readback 3, timeout 1": results of st in [from, to] seen this run
 * (after-offer failures or before-offer refusals), "none" if none. */
void kj_progress_reasons(const struct kj_keeper_stats *st, bool after_offer,
			 char *out, size_t cap);
double kj_progress_rate(const struct kj_keeper_stats *st);
void kj_progress_eta(const struct kj_keeper_stats *st, char *out, size_t cap);

/* status.c: the terminal forms. */
void kj_status_setup(struct kj_progress *p);
void kj_status_draw(struct kj_progress *p);
void kj_status_end(struct kj_progress *p);
void kj_status_note(struct kj_progress *p, const struct kj_record *r,
		    bool offered);

struct kj_run_summary {
	const char *job;
	const char *state_dir;
	const char *outcome;   /* completed|max_failed|stopped|exhausted|error */
	int exit_code;
	uint64_t fsyncs;
	uint64_t checkpoints;
	uint64_t quote_ms_max;
	uint64_t quote_ms_total;
	uint64_t tree_size;
	const char *secret_memory;
};

void kj_summary_print(const struct kj_run_summary *s,
		      const struct kj_keeper_stats *st);
KJ_MUST_CHECK int kj_summary_write_json(const char *path,
					const struct kj_run_summary *s,
					const struct kj_keeper_stats *st);

#endif
