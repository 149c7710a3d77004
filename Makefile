# SPDX-License-Identifier: Apache-2.0
# kinject: plain GNU Make, pkg-config for every dependency.
#
#   make demo     the main job on embedded defaults (swtpm, SoftHSM2, sim)
#   make test     everything: build, unit + integration tests, ASan/UBSan run
#   make fuzz     libFuzzer targets, FUZZ_SECONDS each (default 60)
#   make bench    benchmarks (reported, not asserted)
#   make sbom     CycloneDX 1.6 SBOM of the appliance, schema-checked
#   make install  kinject and kinject(1) under DESTDIR/PREFIX
#   make deps     install the Debian packages the above need
#   make kmod     kmod/kinject.ko against linux-headers-amd64
#   make image    the appliance initramfs + golden.json (docs/IMAGE.md)
#   make vm-test  boot the image in QEMU (TCG) with swtpm, a job inside

SHELL := /bin/bash
BUILD ?= build
CC ?= gcc
SAN ?=

PKGS := openssl tss2-esys tss2-mu tss2-tctildr tss2-rc p11-kit-1 \
	libseccomp liburing sqlite3 jansson
TEST_PKGS := cmocka

# Debian 12 packages: libraries, the real components the tests run against,
# and the tools that make customer inputs (openssl) and check quotes.
DEB_PKGS := build-essential pkg-config libssl-dev openssl libtss2-dev \
	libp11-kit-dev p11-kit libseccomp-dev liburing-dev libsqlite3-dev \
	sqlite3 libcmocka-dev libjansson-dev softhsm2 swtpm swtpm-tools \
	tpm2-tools clang libclang-rt-14-dev opensc procps psmisc
# evidence tests: JSON tampering (jq), byte edits (xxd)
DEB_PKGS += jq xxd
# ceremony tests: an officer key on a PKCS#11 token signs with openssl cms
DEB_PKGS += libengine-pkcs11-openssl
# make bench: result tables; test credential batches (tests/lib/gencreds.py)
DEB_PKGS += python3 python3-cryptography
# audit report (html5lib), make sbom (readelf, jsonschema), status screen
# (tmux), kinject(1) (groff, col)
DEB_PKGS += python3-html5lib libxml2-utils binutils python3-jsonschema tmux \
	groff-base bsdextrautils

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
TEST_LIBS := $(shell pkg-config --libs $(TEST_PKGS) 2>/dev/null)

WARN := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wstrict-prototypes \
	-Wmissing-prototypes -Wvla -Wno-missing-field-initializers
HARDEN := -fstack-protector-strong -fstack-clash-protection -fcf-protection \
	-fPIE
LDHARDEN := -pie -Wl,-z,relro,-z,now -Wl,-z,noexecstack

ifeq ($(SAN),1)
# ASan and _FORTIFY_SOURCE check the same things and trip over each other.
OPT := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -DKJ_SANITIZED \
	-fno-sanitize-recover=all
LDSAN := -fsanitize=address,undefined
else
OPT := -O2 -g -U_FORTIFY_SOURCE -D_FORTIFY_SOURCE=3
LDSAN :=
endif

CFLAGS_ALL := -std=gnu11 $(OPT) $(WARN) $(HARDEN) -D_GNU_SOURCE \
	-Iappliance $(PKG_CFLAGS) $(CFLAGS)
LDFLAGS_ALL := $(LDHARDEN) $(LDSAN) $(LDFLAGS)

LIB_SRCS := $(wildcard appliance/*/*.c)
LIB_OBJS := $(LIB_SRCS:appliance/%.c=$(BUILD)/obj/%.o)
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)

.PHONY: all deps test check-layout check-unit check-integration check-asan \
	fuzz bench demo clean kmod image vm-test check-image sbom install \
	check-sbom-image
.DELETE_ON_ERROR:

all: $(BUILD)/kinject

$(BUILD)/obj/%.o: appliance/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) -MMD -MP -c $< -o $@

$(BUILD)/libkinject.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/kinject: $(BUILD)/obj/main.o $(BUILD)/libkinject.a
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(PKG_LIBS)

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libkinject.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) -Itests/unit -MMD -MP $(LDFLAGS_ALL) -o $@ $< \
		$(BUILD)/libkinject.a $(PKG_LIBS) $(TEST_LIBS)

# `kinject version' names the version of each library it was built against.
KJ_BUILT_WITH := $(foreach p,$(PKGS),$(p)=$(shell pkg-config --modversion $(p) \
	2>/dev/null))
$(BUILD)/obj/cli/cmd_version.o: CFLAGS_ALL += -DKJ_BUILT_WITH='"$(KJ_BUILT_WITH)"'

-include $(LIB_OBJS:.o=.d) $(BUILD)/obj/main.d $(UNIT_BINS:=.d)

# The appliance VM (docs/IMAGE.md): Debian's kernel, its headers for
# kinject.ko, QEMU without its desktop recommends, busybox for the image,
# OVMF for the firmware-measured boot; systemd's EFI stub (the UKI), mtools
# and dosfstools (the EFI system partition the VM boots); osslsigncode
# checks the Authenticode digests golden.json's PCR 4 is made of.
DEB_PKGS += qemu-system-x86 linux-image-amd64 linux-headers-amd64 \
	busybox-static ovmf cpio systemd-boot-efi mtools dosfstools osslsigncode
# The kernel the image boots and kinject.ko is built for: linux-image-amd64's.
KVER ?= $(shell dpkg-query -W -f='$${Depends}' linux-image-amd64 2>/dev/null | \
	sed -n 's/^linux-image-\([^ ,]*\).*/\1/p')
KDIR ?= /usr/src/linux-headers-$(KVER)

# Built in a copy under $(BUILD), one per kernel (Kbuild writes next to its
# sources); the prefix map keeps the build directory out of the bytes.
KMOD_KO := $(BUILD)/kmod/$(KVER)/kinject.ko
$(KMOD_KO): kmod/Kbuild kmod/kinject.c kmod/kinject_ioctl.h
	@[ -n "$(KVER)" ] && [ -d "$(KDIR)" ] || { echo "kmod: no headers" \
		"for linux-image-amd64 ($(KDIR)): make deps"; exit 1; }
	@mkdir -p $(@D)
	cp $^ $(@D)/
	$(MAKE) -C $(KDIR) M=$(abspath $(@D)) \
		KCFLAGS=-ffile-prefix-map=$(abspath $(@D))/= modules

kmod: $(KMOD_KO)

# The appliance initramfs, its UKI and boot disk (esp.img) and golden.json,
# reproducible (initramfs/build.sh).
IMAGE := $(BUILD)/image
$(IMAGE)/initramfs.cpio.gz: $(BUILD)/kinject $(KMOD_KO) initramfs/build.sh \
		initramfs/init initramfs/site-install initramfs/bootchain.py \
		initramfs/cpu-modules \
		$(shell find policy -type f)
	initramfs/build.sh $(IMAGE) $(BUILD)/kinject $(KMOD_KO) $(KVER)

image: $(IMAGE)/initramfs.cpio.gz

# Two builds of the image into different directories: the same bytes.
check-image: $(BUILD)/kinject $(KMOD_KO)
	@KVER=$(KVER) tests/vm/reproducible.sh $(BUILD)/kinject $(KMOD_KO)

$(BUILD)/vm/arena_probe: tests/vm/arena_probe.c kmod/kinject_ioctl.h
	@mkdir -p $(@D)
	$(CC) -std=gnu11 -O2 $(WARN) -static -o $@ $<

# The image booted in QEMU (TCG) with swtpm, a job inside (tests/vm/run.sh).
vm-test: image $(BUILD)/vm/arena_probe check-image
	@KINJECT=$(abspath $(BUILD)/kinject) IMAGE=$(abspath $(IMAGE)) \
		KVER=$(KVER) PROBE=$(abspath $(BUILD)/vm/arena_probe) \
		tests/vm/run.sh

# Installs only what is missing; a no-op (no apt-get at all) when all is there.
deps:
	@missing=$$(for p in $(DEB_PKGS); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | \
		grep -q '^install ok installed$$' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "deps: installing:" $$missing; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -q && apt-get install -y -q --no-install-recommends \
			$$missing; \
	fi

# The boundaries of docs/HACKING.md and the file-size bar; the self-test
# first shows that each rule still catches a breach.
check-layout:
	@CC=$(CC) PKG_CFLAGS="$(PKG_CFLAGS)" tests/layout/check.sh --self-test
	@CC=$(CC) PKG_CFLAGS="$(PKG_CFLAGS)" tests/layout/check.sh

check-unit: $(BUILD)/kinject $(UNIT_BINS)
	@tests/run-unit.sh $(UNIT_BINS)

check-integration: $(BUILD)/kinject $(BUILD)/bench/pump
	@KINJECT=$(abspath $(BUILD)/kinject) tests/run-integration.sh

# Second build of everything under ASan + UBSan, same tests.
check-asan:
	@$(MAKE) --no-print-directory BUILD=build/asan SAN=1 check-unit \
		check-integration

test: deps
	@$(MAKE) --no-print-directory check-layout
	@$(MAKE) --no-print-directory check-unit check-integration
	@$(MAKE) --no-print-directory check-asan
	@$(MAKE) --no-print-directory vm-test
	@$(MAKE) --no-print-directory check-sbom-image
	@echo "make test: all tests passed"

FUZZ_SECONDS ?= 60
fuzz: deps
	@$(MAKE) --no-print-directory -f tests/fuzz/fuzz.mk \
		FUZZ_SECONDS=$(FUZZ_SECONDS)

clean:
	rm -rf build

# Benchmarks: one JSON line per scenario, then a table (tests/bench/run.sh).
$(BUILD)/bench/pump: tests/bench/pump.c
	@mkdir -p $(@D)
	$(CC) -std=gnu11 -O2 $(WARN) -pthread -o $@ $< -lcrypto

# The journal's group-commit benchmark alone (docs/JOURNAL.md); built with
# the others so that it keeps compiling as the journal changes.
$(BUILD)/bench/bench_journal: tests/bench/bench_journal.c $(BUILD)/libkinject.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) $(LDFLAGS_ALL) -o $@ $< $(BUILD)/libkinject.a \
		$(PKG_LIBS)

# Recall on a generated 1,000,000-record journal (SPEC.md §6: under 1 s).
$(BUILD)/bench/bench_recall: tests/bench/bench_recall.c $(BUILD)/libkinject.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) $(LDFLAGS_ALL) -o $@ $< $(BUILD)/libkinject.a \
		$(PKG_LIBS)

# Export and verify of a 1,000,000-device job (issue 12), peak RSS.
$(BUILD)/bench/bench_evidence: tests/bench/bench_evidence.c $(BUILD)/libkinject.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) $(LDFLAGS_ALL) -o $@ $< \
		$(BUILD)/libkinject.a $(PKG_LIBS)

# The naive line (QUALITY.md): thread per socket, fsync + quote per device.
$(BUILD)/bench/naive: tests/bench/naive.c $(BUILD)/libkinject.a
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) $(LDFLAGS_ALL) -pthread -o $@ $< \
		$(BUILD)/libkinject.a $(PKG_LIBS)

bench: deps $(BUILD)/kinject $(BUILD)/bench/pump $(BUILD)/bench/bench_journal \
	$(BUILD)/bench/bench_recall $(BUILD)/bench/bench_evidence \
	$(BUILD)/bench/naive $(BUILD)/tests/test_engine_bench
	@BUILD=$(abspath $(BUILD)) tests/bench/run.sh

# CycloneDX 1.6 of what ships (tools/sbom.py), checked against the schema
# of the CycloneDX npm package and the BSI TR-03183-2 fields.
SBOM := $(BUILD)/kinject.cdx.json
# The UKI carries these as their packages installed them (initramfs/build.sh).
BOOT_FILES := /boot/vmlinuz-$(KVER) /usr/lib/systemd/boot/efi/linuxx64.efi.stub
sbom: $(BUILD)/kinject $(IMAGE)/initramfs.cpio.gz
	/usr/bin/python3 tools/sbom.py --binary $(BUILD)/kinject \
		--version "$$($(BUILD)/kinject version | sed -n 's/^kinject //p')" \
		--image $(IMAGE)/initramfs.cpio.gz \
		$(addprefix --boot-file ,$(BOOT_FILES)) --out $(SBOM)
	tools/cyclonedx-schema.sh $(BUILD)/cyclonedx-schema
	/usr/bin/python3 tools/sbom_check.py --schema-dir \
		$(BUILD)/cyclonedx-schema $(SBOM)

# Every packaged file the image ships is in its SBOM (tests/vm/).
check-sbom-image: $(BUILD)/kinject $(IMAGE)/initramfs.cpio.gz
	@KINJECT=$(abspath $(BUILD)/kinject) IMAGE=$(abspath $(IMAGE)) \
		BOOT_FILES="$(BOOT_FILES)" tests/vm/sbom_image.sh

PREFIX ?= /usr/local
install: $(BUILD)/kinject
	install -D -m 0755 $(BUILD)/kinject $(DESTDIR)$(PREFIX)/bin/kinject
	install -D -m 0644 docs/kinject.1 \
		$(DESTDIR)$(PREFIX)/share/man/man1/kinject.1

# The whole story on embedded defaults (README's first command): `kinject
# demo', every command it runs printed.  DEMO_FLAGS: --dir D --devices N ...
demo: deps
	@$(MAKE) --no-print-directory $(BUILD)/kinject
	$(BUILD)/kinject demo $(DEMO_FLAGS)
