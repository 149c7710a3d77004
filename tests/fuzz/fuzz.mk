# SPDX-License-Identifier: Apache-2.0
# libFuzzer targets: every tests/fuzz/fuzz_<name>.c is built with clang
# against all appliance sources except main.c (those in appliance/*/) (compiled with clang into
# build/fuzz/) and run for FUZZ_SECONDS.  Invoked by `make fuzz' as
#   make -f tests/fuzz/fuzz.mk FUZZ_SECONDS=N
# Fails if any target crashes, leaks, trips a sanitizer or times out.
# Seeds: tests/fuzz/corpus/<name>/ (optional) plus, for the JSON inputs,
# the examples under policy/.  Crash inputs land in build/fuzz/artifacts/.

SHELL := /bin/bash
FUZZ_SECONDS ?= 60
FUZZ_BUILD ?= build/fuzz
FUZZ_CC ?= clang

PKGS := openssl tss2-esys tss2-mu tss2-tctildr tss2-rc p11-kit-1 \
	libseccomp liburing sqlite3 jansson
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

# KJ_FUZZING lets code skip what cannot run in a fuzzer (none needed yet).
SAN := -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_CFLAGS := -std=gnu11 -g -O1 -fno-omit-frame-pointer -D_GNU_SOURCE \
	-DKJ_FUZZING -DKJ_SANITIZED -Wall -Wextra -Wno-unused-parameter \
	-Iappliance $(PKG_CFLAGS) $(SAN)

LIB_SRCS := $(wildcard appliance/*/*.c)
LIB_OBJS := $(LIB_SRCS:appliance/%.c=$(FUZZ_BUILD)/obj/%.o)
TARGET_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
TARGETS := $(TARGET_SRCS:tests/fuzz/%.c=$(FUZZ_BUILD)/%)

# Options for every run.  -close_fd_mask=2: the parsers log every rejected
# input to stderr, which would dominate the run time; libFuzzer keeps its
# own output and sanitizer reports on a private copy of stderr.
RUN_OPTS := -max_total_time=$(FUZZ_SECONDS) -timeout=25 -rss_limit_mb=2048 \
	-max_len=65536 -close_fd_mask=2 -print_final_stats=1

.PHONY: all build run
.DELETE_ON_ERROR:

all: run

build: $(TARGETS)

$(FUZZ_BUILD)/obj/%.o: appliance/%.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP \
		-c $< -o $@

$(FUZZ_BUILD)/libkinject-fuzz.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_BUILD)/libkinject-fuzz.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -MMD -MP -o $@ $< \
		$(FUZZ_BUILD)/libkinject-fuzz.a $(PKG_LIBS)

-include $(LIB_OBJS:.o=.d) $(TARGETS:=.d)

# Runs every target even after a failure, then fails if any failed.
run: build
	@mkdir -p $(FUZZ_BUILD)/artifacts; failed=(); \
	for t in $(notdir $(TARGETS)); do \
		corpus=$(FUZZ_BUILD)/corpus/$$t; mkdir -p $$corpus; \
		seeds=""; \
		[ -d tests/fuzz/corpus/$$t ] && seeds="$$seeds tests/fuzz/corpus/$$t"; \
		[ $$t = fuzz_workorder ] && seeds="$$seeds policy/work-orders"; \
		[ $$t = fuzz_product ] && seeds="$$seeds policy/products"; \
		echo "fuzz: $$t for $(FUZZ_SECONDS) s"; \
		if ./$(FUZZ_BUILD)/$$t $(RUN_OPTS) \
			-artifact_prefix=$(FUZZ_BUILD)/artifacts/$$t- \
			$$corpus $$seeds > $(FUZZ_BUILD)/$$t.log 2>&1; then \
			grep -E '^stat::number_of_executed_units|^Done' \
				$(FUZZ_BUILD)/$$t.log | tr '\n' ' '; echo; \
		else \
			echo "FAIL $$t (log: $(FUZZ_BUILD)/$$t.log)"; \
			grep -A40 -E 'ERROR:|runtime error|deadly signal|Timeout' \
				$(FUZZ_BUILD)/$$t.log | head -60; \
			failed+=($$t); \
		fi; \
	done; \
	if [ $${#failed[@]} -gt 0 ]; then \
		echo "fuzz: failed: $${failed[*]}"; exit 1; fi; \
	echo "fuzz: all $(words $(TARGETS)) targets clean"
