# custodyfs - build, test, install, benchmark.
#
#   make            build ./custodyfs and ./custodyctl (names missing packages)
#   make test       install missing Debian packages, build, check the layers,
#                   run every test, then the whole suite again under ASan+UBSan
#   make demo       install, build, create a demo store, mount it
#   make bench      custodyfs vs gocryptfs vs FUSE floor (tests/bench)
#   make install PREFIX=/usr/local [DESTDIR=...]
#   make sanitize   build the ASan+UBSan binaries into build-asan/
#   make layers     fail on an include that crosses the layers (src/README.md)
#   make fuzz       run every fuzz target for FUZZ_SECONDS (default 60) each
#   make deps       install the Debian packages the build and the tests use
#
# The layers (src/README.md): lib < store < keys < fs < fuse, cli. Each
# folder of src/ is compiled with the include paths of its own layer and the
# layers below it, so a forbidden include does not compile; FUSE's headers
# are on the path of src/fuse only.

CC      ?= gcc
PREFIX  ?= /usr/local
DESTDIR ?=

WARN    := -Wall -Wextra -Werror -Wmissing-declarations -Wwrite-strings \
           -Wstrict-prototypes -Wvla -Wformat-security
CFLAGS  ?= -O2 -g
# required flags are kept apart so that `make CFLAGS=...` (sanitize) keeps them
REQ_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) \
           -fstack-protector-strong -D_FORTIFY_SOURCE=2 -fPIE
override CFLAGS += $(REQ_CFLAGS)
# `make NO_AUDIT=1 BUILD=build-noaudit`: a build without filesystem audit rows,
# only to measure what the trail costs (tests/bench/audit-cost.sh)
ifeq ($(NO_AUDIT),1)
override CFLAGS += -DCUSTODY_NO_AUDIT
endif
override LDFLAGS += -pie -Wl,-z,relro,-z,now

# pkg-config runs when a recipe needs it (recursive variables), never while
# make reads this file: `make demo` on a bare machine installs first.
FUSE_CFLAGS = $(shell pkg-config --cflags fuse3)
CORE_LIBS   = $(shell pkg-config --libs sqlite3 libsodium inih) -lpthread
FUSE_LIBS   = $(shell pkg-config --libs fuse3)

# include path of each layer: its own headers and those of every layer below
INC_lib   := -Iinclude/lib
INC_store := $(INC_lib) -Iinclude/store
INC_keys  := $(INC_store) -Iinclude/keys
INC_fs    := $(INC_keys) -Iinclude/fs
INC_fuse   = $(INC_fs) -Iinclude/fuse $(FUSE_CFLAGS)
INC_cli   := $(INC_fs) -Iinclude/cli
LAYERS    := lib store keys fs fuse cli

BUILD   ?= build
HDRS    := $(wildcard include/*/*.h src/*/*.h)
objs     = $(patsubst src/%.c,$(BUILD)/%.o,$(wildcard $(foreach L,$(1),src/$(L)/*.c)))
CORE_O   = $(call objs,lib store keys fs)
FS_O     = $(call objs,fuse)
CTL_O    = $(call objs,cli)
UNIT    := $(patsubst tests/unit/%.c,%,$(wildcard tests/unit/test_*.c))

all: custodyfs custodyctl

# The packages the build needs, as pkg-config names and Debian packages.
BUILD_PKGS := fuse3:libfuse3-dev sqlite3:libsqlite3-dev \
              libsodium:libsodium-dev inih:libinih-dev
need-pkgs:
	@missing=""; command -v pkg-config >/dev/null 2>&1 || missing=" pkg-config"; \
	command -v $(CC) >/dev/null 2>&1 || missing="$$missing build-essential"; \
	for p in $(BUILD_PKGS); do \
	  pkg-config --exists $${p%%:*} 2>/dev/null || missing="$$missing $${p#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "make: missing Debian packages:$$missing (install them with apt-get, or run 'make deps' as root)" >&2; \
	  exit 1; \
	fi

define layer_rule
$(BUILD)/$(1)/%.o: src/$(1)/%.c $$(HDRS) | $(BUILD)/$(1) need-pkgs
	$$(CC) $$(CFLAGS) $$(INC_$(1)) -c -o $$@ $$<
$(BUILD)/$(1):
	mkdir -p $$@
endef
$(foreach L,$(LAYERS),$(eval $(call layer_rule,$(L))))

$(BUILD):
	mkdir -p $(BUILD)

# cp + mv: a running daemon keeps its (old) binary, never "text file busy"
custodyfs: $(BUILD)/custodyfs
	cp $< $@.tmp && mv -f $@.tmp $@
custodyctl: $(BUILD)/custodyctl
	cp $< $@.tmp && mv -f $@.tmp $@

$(BUILD)/custodyfs: $(CORE_O) $(FS_O)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(FUSE_LIBS) $(CORE_LIBS)
$(BUILD)/custodyctl: $(CORE_O) $(CTL_O)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(CORE_LIBS)

# unit tests see every layer but FUSE
$(BUILD)/test_%: tests/unit/test_%.c $(CORE_O) tests/unit/unit.h | need-pkgs
	$(CC) $(CFLAGS) $(INC_cli) -Itests/unit $(LDFLAGS) -o $@ $< $(CORE_O) $(CORE_LIBS)

# standalone test programs (tests/*.c): difftest, posix, ...
TOOLS   := $(patsubst tests/%.c,%,$(wildcard tests/*.c))
$(BUILD)/%: tests/%.c | $(BUILD)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $<
tools: $(TOOLS:%=$(BUILD)/%)

unit: $(UNIT:%=$(BUILD)/%)

layers:
	tests/layers.sh

# ---- dependencies (Debian 12) ----
DEBS := build-essential pkg-config libfuse3-dev fuse3 libsqlite3-dev sqlite3 \
        libsodium-dev libinih-dev attr jq systemd acl \
        man-db groff-base bsdextrautils procps util-linux perl clang strace
deps:
	@missing=""; for p in $(DEBS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" \
	    || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

# ---- tests ----
# each suite runs once per build flavour: the normal build, then ASan+UBSan
test: deps
	$(MAKE) all unit tools
	tests/layers.sh
	tests/run.sh --bin . --build $(BUILD)
	$(MAKE) sanitize
	tests/run.sh --bin build-asan --build build-asan --sanitized
	$(MAKE) fuzz-smoke

sanitize:
	$(MAKE) BUILD=build-asan \
	  CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all" \
	  LDFLAGS="-fsanitize=address,undefined" \
	  build-asan/custodyfs build-asan/custodyctl unit tools

# ---- fuzzing: clang's libFuzzer over every parser of hostile bytes ----
# tests/fuzz/fuzz_NAME.c, seeds in tests/fuzz/corpus/fuzz_NAME/, built with
# ASan+UBSan into build-fuzz/ and run by tests/fuzz/run.sh (saved crash
# inputs in tests/fuzz/crashes/ are replayed first). `make fuzz` runs each
# for FUZZ_SECONDS, `make fuzz-smoke` (part of make test) for 10 s.
FUZZ_SECONDS ?= 60
FUZZ_CC      ?= clang
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ        := $(patsubst tests/fuzz/%.c,%,$(wildcard tests/fuzz/fuzz_*.c))

$(BUILD)/fuzz_%: tests/fuzz/fuzz_%.c $(CORE_O) tests/unit/unit.h | need-pkgs
	$(CC) $(CFLAGS) $(INC_cli) -Itests/unit $(LDFLAGS) -o $@ $< $(CORE_O) $(CORE_LIBS)

fuzz-build:
	$(MAKE) BUILD=build-fuzz CC=$(FUZZ_CC) \
	  CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link $(FUZZ_SAN)" \
	  LDFLAGS="-fsanitize=fuzzer $(FUZZ_SAN)" $(FUZZ:%=build-fuzz/%)

fuzz: fuzz-build
	tests/fuzz/run.sh build-fuzz $(FUZZ_SECONDS) $(FUZZ)

fuzz-smoke: fuzz-build
	tests/fuzz/run.sh build-fuzz 10 $(FUZZ)

noaudit:
	$(MAKE) NO_AUDIT=1 BUILD=build-noaudit build-noaudit/custodyfs \
	  build-noaudit/custodyctl

bench: deps
	$(MAKE) all
	tests/bench/run.sh

demo: deps
	$(MAKE) all
	tests/demo.sh

install: deps
	$(MAKE) all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)/etc/custodyfs
	install -m 0755 custodyfs $(DESTDIR)$(PREFIX)/bin/custodyfs
	install -m 0755 custodyctl $(DESTDIR)$(PREFIX)/bin/custodyctl
	# the config is the admin's once installed: never overwrite it
	[ -e $(DESTDIR)/etc/custodyfs/custodyfs.ini ] || \
	  install -m 0644 etc/custodyfs.ini $(DESTDIR)/etc/custodyfs/custodyfs.ini
	install -d $(DESTDIR)$(PREFIX)/share/man/man1 \
	  $(DESTDIR)$(PREFIX)/share/man/man5 $(DESTDIR)$(PREFIX)/share/man/man8 \
	  $(DESTDIR)$(PREFIX)/share/bash-completion/completions \
	  $(DESTDIR)$(PREFIX)/lib/systemd/system
	install -m 0644 etc/custodyfs.1 $(DESTDIR)$(PREFIX)/share/man/man1/custodyfs.1
	install -m 0644 etc/custodyfs.ini.5 $(DESTDIR)$(PREFIX)/share/man/man5/custodyfs.ini.5
	install -m 0644 etc/custodyctl.8 $(DESTDIR)$(PREFIX)/share/man/man8/custodyctl.8
	install -m 0644 etc/bash_completion/custodyfs \
	  $(DESTDIR)$(PREFIX)/share/bash-completion/completions/custodyfs
	install -m 0644 etc/bash_completion/custodyctl \
	  $(DESTDIR)$(PREFIX)/share/bash-completion/completions/custodyctl
	sed 's|/usr/local/bin/|$(PREFIX)/bin/|g' 'etc/custodyfs@.service' \
	  > '$(DESTDIR)$(PREFIX)/lib/systemd/system/custodyfs@.service'
	chmod 0644 '$(DESTDIR)$(PREFIX)/lib/systemd/system/custodyfs@.service'

clean:
	rm -rf build build-asan build-noaudit build-fuzz custodyfs custodyctl

.PHONY: noaudit all unit tools deps test sanitize bench demo install clean \
        layers need-pkgs fuzz fuzz-build fuzz-smoke
