/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Inside `kinject demo' (cmd_demo.c: the story and the running of
 * commands; demo_steps.c: the HSM token, the ceremony and the customer's
 * inputs).  Not for other commands.
 */
#ifndef KINJECT_DEMO_INT_H
#define KINJECT_DEMO_INT_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define KJ_DEMO_PATHS 16
#define KJ_DEMO_DIR_MAX 1024    /* --dir, leaves room for what goes in it */
#define KJ_DEMO_JOB "WO-2027-0315"

struct kj_demo {
	char dir[KJ_DEMO_DIR_MAX], state[KJ_DEMO_DIR_MAX + 8], self[PATH_MAX];
	unsigned devices, sockets;
	char tcti[96];
	char hsm_uri[256], pin_source[KJ_DEMO_DIR_MAX + 32];
	/* the customer's inputs */
	char wo[KJ_DEMO_DIR_MAX + 64], wo_sig[KJ_DEMO_DIR_MAX + 72];
	char product[KJ_DEMO_DIR_MAX + 64], product_sig[KJ_DEMO_DIR_MAX + 72];
	char fw[KJ_DEMO_DIR_MAX + 64], creds[KJ_DEMO_DIR_MAX + 64];
	char paths[KJ_DEMO_PATHS][PATH_MAX];
	size_t n_paths;
};

/* Print argv as a shell line (with `>out 2>&1' when out is set), then
 * run it and wait: 0, or -EIO (logged, naming the command and out). */
int kj_demo_run(struct kj_demo *d, const char *out, const char *const argv[]);
/* The same without waiting (kinject run in the background). */
int kj_demo_spawn(struct kj_demo *d, const char *out, pid_t *pid,
		  const char *const argv[]);
int kj_demo_wait(pid_t pid, const char *what);
/* DIR/<fmt...> in one of KJ_DEMO_PATHS rotating buffers. */
char *kj_demo_path(struct kj_demo *d, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* "# what the demo does itself", for the reader. */
void kj_demo_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A file the demo writes itself (said in words, not as a command). */
int kj_demo_write(struct kj_demo *d, const char *name, const void *data,
		  size_t len, const char *what);

/* Base64 of buf (malloc'd), NULL on ENOMEM. */
char *kj_demo_base64(const uint8_t *buf, size_t len);

/* demo_steps.c */
int kj_demo_step_hsm(struct kj_demo *d);
int kj_demo_step_ceremony(struct kj_demo *d);
int kj_demo_step_customer(struct kj_demo *d);

#endif
