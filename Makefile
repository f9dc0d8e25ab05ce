# custodyfs - build, test, install, benchmark.
#
#   make            build ./custodyfs and ./custodyctl
#   make test       install missing Debian packages, build, run every test,
#                   then the whole suite again under ASan+UBSan
#   make demo       install, build, create a demo store, mount it
#   make bench      custodyfs vs gocryptfs vs FUSE floor (tests/bench)
#   make install PREFIX=/usr/local [DESTDIR=...]
#   make sanitize   build the ASan+UBSan binaries into build-asan/

CC      ?= gcc
PREFIX  ?= /usr/local
DESTDIR ?=
PKGS    := fuse3 sqlite3 libsodium inih

WARN    := -Wall -Wextra -Werror -Wmissing-declarations -Wwrite-strings \
           -Wstrict-prototypes -Wvla -Wformat-security
CFLAGS  ?= -O2 -g
# required flags are kept apart so that `make CFLAGS=...` (sanitize) keeps them
REQ_CFLAGS := -std=c11 -D_GNU_SOURCE -Iinclude $(WARN) \
           -fstack-protector-strong -D_FORTIFY_SOURCE=2 -fPIE \
           $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
override CFLAGS += $(REQ_CFLAGS)
# `make NO_AUDIT=1 BUILD=build-noaudit`: a build without filesystem audit rows,
# only to measure what the trail costs (tests/bench/audit-cost.sh)
ifeq ($(NO_AUDIT),1)
override CFLAGS += -DCUSTODY_NO_AUDIT
endif
override LDFLAGS += -pie -Wl,-z,relro,-z,now
LDLIBS  := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread

BUILD   ?= build
CORE    := cipher store store_keys store_audit store_backup store_session store_ckpt keyring auth config passphrase \
           unlock audit fs inode dir blockio xattr reencrypt check generation
CORE_O  := $(CORE:%=$(BUILD)/%.o)
FS_O    := $(BUILD)/fsops.o $(BUILD)/custodyfs.o
CTL_O   := $(BUILD)/custodyctl.o \
           $(patsubst src/%.c,$(BUILD)/%.o,$(wildcard src/cli_*.c))
UNIT    := $(patsubst tests/unit/%.c,%,$(wildcard tests/unit/test_*.c))

all: custodyfs custodyctl

$(BUILD)/%.o: src/%.c $(wildcard include/*.h src/*.h) | $(BUILD)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD):
	mkdir -p $(BUILD)

custodyfs: $(CORE_O) $(FS_O)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

custodyctl: $(CORE_O) $(CTL_O)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/test_%: tests/unit/test_%.c $(CORE_O) tests/unit/unit.h
	$(CC) $(CFLAGS) -Itests/unit $(LDFLAGS) -o $@ $< $(CORE_O) $(LDLIBS)

# standalone test programs (tests/*.c): difftest, posix, ...
TOOLS   := $(patsubst tests/%.c,%,$(wildcard tests/*.c))
$(BUILD)/%: tests/%.c | $(BUILD)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $<
tools: $(TOOLS:%=$(BUILD)/%)

unit: $(UNIT:%=$(BUILD)/%)
	@for t in $(UNIT); do $(BUILD)/$$t || exit 1; done

# ---- dependencies (Debian 12) ----
DEBS := build-essential pkg-config libfuse3-dev fuse3 libsqlite3-dev sqlite3 \
        libsodium-dev libinih-dev attr jq systemd \
        man-db groff-base bsdextrautils procps util-linux perl
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
test: deps
	$(MAKE) all unit tools
	tests/run.sh --bin . --build $(BUILD)
	$(MAKE) sanitize
	tests/run.sh --bin build-asan --build build-asan --sanitized

sanitize:
	$(MAKE) BUILD=build-asan \
	  CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all" \
	  LDFLAGS="-fsanitize=address,undefined" \
	  build-asan/custodyfs build-asan/custodyctl unit-asan tools

# binaries inside a build directory (build-asan, build-noaudit)
$(BUILD)/custodyfs: $(CORE_O) $(FS_O)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(BUILD)/custodyctl: $(CORE_O) $(CTL_O)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

noaudit:
	$(MAKE) NO_AUDIT=1 BUILD=build-noaudit build-noaudit/custodyfs \
	  build-noaudit/custodyctl
unit-asan: $(UNIT:%=$(BUILD)/%)

bench: deps all
	tests/bench/run.sh

demo: deps all
	tests/demo.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/sbin \
	  $(DESTDIR)/etc/custodyfs
	install -m 0755 custodyfs $(DESTDIR)$(PREFIX)/bin/custodyfs
	install -m 0755 custodyctl $(DESTDIR)$(PREFIX)/sbin/custodyctl
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
	rm -rf build build-asan build-noaudit custodyfs custodyctl

.PHONY: noaudit all unit tools deps test sanitize unit-asan bench demo install clean
