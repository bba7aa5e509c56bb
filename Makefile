# smartrelay - reliable delivery of smart-contact notifications.
#
#   make            build bin/smartrelay
#   make check      unit and integration tests (integration on SQLite and on
#                   a throwaway PostgreSQL), then again under ASan+UBSan
#   make demo       deliver the document's two examples to a local receiver
#   make bench      throughput and latency against a local receiver
#   make bench-pg   1, 2 and 4 relays on a throwaway PostgreSQL, and SQLite
#   make chaos      5000 events while relays are killed at random
#   make chaos-pg   the same with four relays on a throwaway PostgreSQL
#   make valgrind   the daemon under valgrind through failures and retries
#   make fuzz       libFuzzer targets with clang, FUZZ_SECONDS each (60)
#   make install    PREFIX=/usr/local DESTDIR= (binary, man page, systemd unit)
#   make V=1        show the commands

PREFIX  ?= /usr/local
BINDIR  ?= $(PREFIX)/bin
MANDIR  ?= $(PREFIX)/share/man
UNITDIR ?= $(PREFIX)/lib/systemd/system
BUILD   ?= build
BIN     ?= bin
CC      ?= cc
PKG_CONFIG ?= pkg-config
CFLAGS  ?= -O2 -g

PKGS      = sqlite3 libpq libcurl jansson libxml-2.0 libcrypto libmicrohttpd
PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null)
CHECK_CFLAGS := $(shell $(PKG_CONFIG) --cflags check 2>/dev/null)
CHECK_LIBS   := $(shell $(PKG_CONFIG) --libs check 2>/dev/null)

WARNINGS = -Wall -Wextra -Werror -Wshadow -Wmissing-prototypes \
	   -Wstrict-prototypes -Wformat=2 -Wpointer-arith -Wvla \
	   -Wundef -Wwrite-strings -Wold-style-definition
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARNINGS) -Iinclude -I$(BUILD) \
	     $(PKG_CFLAGS) $(CFLAGS) -MMD -MP
ALL_LDFLAGS = $(LDFLAGS)
LIBS = $(PKG_LIBS) -lm

ifneq ($(V),1)
Q = @
quiet = @printf '  %-7s %s\n' $(1) $(2);
endif

# The library: everything but main.c.
LIB_SRCS = \
	relay/addrpolicy.c \
	relay/cli.c \
	relay/cmd_config.c \
	relay/cmd_copy.c \
	relay/cmd_enqueue.c \
	relay/cmd_history.c \
	relay/cmd_init.c \
	relay/cmd_purge.c \
	relay/cmd_requeue.c \
	relay/cmd_run.c \
	relay/cmd_stats.c \
	relay/endpoint.c \
	relay/guard.c \
	relay/log.c \
	relay/metrics.c \
	relay/policy.c \
	relay/progress.c \
	relay/relay.c \
	relay/render.c \
	relay/sign.c \
	relay/store_engine.c \
	relay/store_pg.c \
	relay/store_sqlite.c \
	relay/timeutil.c \
	relay/transfer.c \
	relay/workers.c

MIGRATIONS = $(sort $(wildcard sql/[0-9][0-9][0-9]_*.sql))
PG_MIGRATIONS = $(sort $(wildcard sql/pg/[0-9][0-9][0-9]_*.sql))

UNIT_TESTS = \
	test_addrpolicy \
	test_endpoint \
	test_guard \
	test_metrics \
	test_policy \
	test_progress \
	test_render \
	test_sign \
	test_store \
	test_timeutil \
	test_transfer

INTEGRATION_TESTS = \
	test_commands \
	test_engine \
	test_hostile \
	test_integration \
	test_receivers \
	test_observe \
	test_faults \
	test_security

TOOLS = \
	receiver \
	bench_ceiling \
	bench_fill \
	bench_latency \
	bench_rusage

# libFuzzer targets (tests/fuzz/NAME.c). `make check` replays their
# corpora through tests/fuzz/replay.c; `make fuzz` fuzzes them.
FUZZ_TARGETS = \
	fuzz_config \
	fuzz_render
FUZZ_SECONDS ?= 60
FUZZ_CC ?= clang

LIB      = $(BUILD)/libsmartrelay.a
LIB_OBJS = $(LIB_SRCS:%.c=$(BUILD)/%.o)
PROGRAM  = $(BIN)/smartrelay
TEST_BINS = $(addprefix $(BUILD)/tests/,$(UNIT_TESTS) $(INTEGRATION_TESTS))
TOOL_BINS = $(addprefix $(BUILD)/tools/,$(TOOLS))
REPLAY_BINS = $(addprefix $(BUILD)/tests/fuzz/,$(FUZZ_TARGETS:=-replay))

.PHONY: all check check-unit check-integration check-integration-pg \
	check-asan demo bench bench-pg chaos chaos-pg valgrind install uninstall clean tools \
	fuzz fuzz-build fuzz-run

all: $(PROGRAM) $(TOOL_BINS)

$(PROGRAM): $(BUILD)/relay/main.o $(LIB)
	@mkdir -p $(@D)
	$(call quiet,LINK,$@)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

$(LIB): $(LIB_OBJS)
	$(call quiet,AR,$@)rm -f $@ && $(AR) rcs $@ $^

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	$(call quiet,CC,$@)$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/tests/%.o: tests/%.c
	@mkdir -p $(@D)
	$(call quiet,CC,$@)$(CC) $(ALL_CFLAGS) $(CHECK_CFLAGS) -c -o $@ $<

# The migrations are compiled into the program, so that `init` needs no
# files beside the binary.
$(BUILD)/migrations.inc: $(MIGRATIONS) tools/embed-sql.sh
	@mkdir -p $(@D)
	$(call quiet,GEN,$@)sh tools/embed-sql.sh $(MIGRATIONS) > $@.tmp && mv $@.tmp $@

$(BUILD)/migrations_pg.inc: $(PG_MIGRATIONS) tools/embed-sql.sh
	@mkdir -p $(@D)
	$(call quiet,GEN,$@)sh tools/embed-sql.sh $(PG_MIGRATIONS) > $@.tmp && mv $@.tmp $@

$(BUILD)/relay/store_sqlite.o: $(BUILD)/migrations.inc
$(BUILD)/relay/store_pg.o: $(BUILD)/migrations_pg.inc

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(BUILD)/tests/testutil.o $(LIB)
	$(call quiet,LINK,$@)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(LIBS)

$(BUILD)/tests/fuzz/%-replay: $(BUILD)/tests/fuzz/%.o \
		$(BUILD)/tests/fuzz/replay.o $(LIB)
	$(call quiet,LINK,$@)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/tests/fuzz/%: $(BUILD)/tests/fuzz/%.o $(LIB)
	$(call quiet,LINK,$@)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

$(BUILD)/tools/%: $(BUILD)/tools/%.o $(LIB)
	$(call quiet,LINK,$@)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS)

tools: $(TOOL_BINS)

# Tests find the programs under test through the environment.
TEST_ENV = SMARTRELAY_BIN=$(abspath $(PROGRAM)) \
	   SMARTRELAY_RECEIVER=$(abspath $(BUILD)/tools/receiver) \
	   SMARTRELAY_TMP=$(abspath $(BUILD)/tmp)

check-unit: $(TOOL_BINS) $(addprefix $(BUILD)/tests/,$(UNIT_TESTS)) \
		$(REPLAY_BINS)
	@mkdir -p $(BUILD)/tmp
	$(Q)set -e; for t in $(addprefix $(BUILD)/tests/,$(UNIT_TESTS)); do $(TEST_ENV) $$t; done
	$(Q)set -e; for t in $(FUZZ_TARGETS); do \
		$(BUILD)/tests/fuzz/$$t-replay tests/fuzz/corpus/$$t/*; done

check-integration: $(PROGRAM) $(TOOL_BINS) \
		$(addprefix $(BUILD)/tests/,$(INTEGRATION_TESTS))
	@mkdir -p $(BUILD)/tmp
	$(Q)set -e; for t in $(addprefix $(BUILD)/tests/,$(INTEGRATION_TESTS)); do \
		$(TEST_ENV) $$t; done
	$(Q)if [ "$$(id -u)" = 0 ]; then $(TEST_ENV) $(BUILD)/tests/test_faults --root; \
	else echo "  the read-only and full-disk tests need root (chattr +i, mount): not run"; fi
	$(Q)bash tools/chaos.sh $(PROGRAM) $(BUILD)/tools/receiver $(BUILD)/tmp/chaos \
		--events 500 --kills 5
	$(Q)bash tools/chaos.sh $(PROGRAM) $(BUILD)/tools/receiver \
		$(BUILD)/tmp/chaos-workers --events 500 --kills 6 --workers 2

# The integration suites and the chaos run again, each on its own database
# of a throwaway PostgreSQL server (Debian's binaries under PG_BIN), stopped
# whatever the outcome; as root, then test_faults --netns with a server of
# its own on a bridge to relays in network namespaces.
PG_BIN ?= /usr/lib/postgresql/15/bin
# test_faults breaks SQLite files (read-only, full disk) and test_security
# checks their modes.
PG_INTEGRATION_TESTS = $(filter-out test_faults test_security,\
	$(INTEGRATION_TESTS))

check-integration-pg: $(PROGRAM) $(TOOL_BINS) $(BUILD)/tests/test_faults \
		$(addprefix $(BUILD)/tests/,$(PG_INTEGRATION_TESTS))
	@mkdir -p $(BUILD)/tmp
	$(Q)state=$(abspath $(BUILD)/tmp/pg-server); \
	uri=$$(PG_BIN=$(PG_BIN) sh tools/pg-server.sh start $$state) || exit 1; \
	rc=0; for t in $(addprefix $(BUILD)/tests/,$(PG_INTEGRATION_TESTS)); do \
		$(TEST_ENV) SMARTRELAY_TEST_DB_URI=$$uri SMARTRELAY_PG_BIN=$(PG_BIN) \
			SMARTRELAY_PG_SERVER=$(abspath tools/pg-server.sh) \
			SMARTRELAY_PG_STATE=$$state $$t || { rc=1; break; }; done; \
	[ $$rc -ne 0 ] || { $(PG_BIN)/createdb --maintenance-db=$$uri/postgres chaos && \
		bash tools/chaos.sh $(PROGRAM) $(BUILD)/tools/receiver \
		$(BUILD)/tmp/chaos-pg --events 500 --kills 5 --relays 4 \
		--db $$uri/chaos; } || rc=1; \
	PG_BIN=$(PG_BIN) sh tools/pg-server.sh stop $$state; \
	[ $$rc -ne 0 ] || if [ "$$(id -u)" != 0 ]; then \
		echo "  the network-partition test needs root (ip netns): not run"; \
	elif ! { ip netns add smartrelay-probe-$$$$ && \
		ip netns delete smartrelay-probe-$$$$; } 2>/dev/null; then \
		echo "  network namespaces are not available here (ip netns add" \
		     "failed): the process-level takeover tests stand in"; \
	else $(TEST_ENV) SMARTRELAY_PG_BIN=$(PG_BIN) \
		SMARTRELAY_PG_SERVER=$(abspath tools/pg-server.sh) \
		$(BUILD)/tests/test_faults --netns || rc=1; fi; \
	exit $$rc

SANITIZE = -fsanitize=address,undefined -fno-omit-frame-pointer \
	   -fno-sanitize-recover=all

# The same suite, built apart under AddressSanitizer and UBSan.
check-asan:
	$(Q)$(MAKE) --no-print-directory BUILD=build/asan BIN=build/asan/bin \
		CFLAGS="-O1 -g $(SANITIZE)" LDFLAGS="$(SANITIZE)" \
		check-unit check-integration check-integration-pg

check: check-unit check-integration check-integration-pg check-asan

FUZZ_SANITIZE = -fsanitize=address,undefined -fno-omit-frame-pointer \
		-fno-sanitize-recover=all

# The library and the targets built apart with clang; each target runs for
# FUZZ_SECONDS from its committed corpus, keeping what it learns in
# build/fuzz/corpus/NAME and any crash in build/fuzz/crash-*.
fuzz:
	$(Q)$(MAKE) --no-print-directory BUILD=build/fuzz BIN=build/fuzz/bin \
		CC=$(FUZZ_CC) \
		CFLAGS="-O1 -g $(FUZZ_SANITIZE) -fsanitize=fuzzer-no-link" \
		LDFLAGS="$(FUZZ_SANITIZE) -fsanitize=fuzzer" fuzz-run

fuzz-build: $(addprefix $(BUILD)/tests/fuzz/,$(FUZZ_TARGETS))

fuzz-run: fuzz-build
	$(Q)set -e; for t in $(FUZZ_TARGETS); do \
		mkdir -p $(BUILD)/corpus/$$t; \
		$(BUILD)/tests/fuzz/$$t -max_total_time=$(FUZZ_SECONDS) \
			-timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
			-artifact_prefix=$(BUILD)/ -dict=tests/fuzz/$$t.dict \
			$(BUILD)/corpus/$$t tests/fuzz/corpus/$$t; \
	done

demo: $(PROGRAM) $(TOOL_BINS)
	$(Q)sh tools/demo.sh $(PROGRAM) $(BUILD)/tools/receiver

# The unit is installed with the binary's real path; the service's user
# is the packager's or the admin's to create (see tools/smartrelay.service).
# BENCH_N=100000 BENCH_LARGE=1 BENCH_HISTORY=1: see tools/bench.sh.
bench: $(PROGRAM) $(TOOL_BINS)
	$(Q)sh tools/bench.sh $(PROGRAM) $(BUILD)/tools

# BENCH_EVENTS=100000 BENCH_RELAYS="1 2 4" BENCH_RECEIVER_MS=0: see
# tools/bench-pg.sh.
bench-pg: $(PROGRAM) $(TOOL_BINS)
	$(Q)PG_BIN=$(PG_BIN) sh tools/bench-pg.sh $(PROGRAM) $(BUILD)/tools

# Events produced with sqlite3 while relays die by SIGKILL (tools/chaos.sh);
# make check runs a short form.
CHAOS_EVENTS ?= 5000
CHAOS_KILLS ?= 20
CHAOS_RELAYS ?= 2
CHAOS_WORKERS ?= 1
chaos: $(PROGRAM) $(TOOL_BINS)
	$(Q)bash tools/chaos.sh $(PROGRAM) $(BUILD)/tools/receiver $(BUILD)/chaos \
		--events $(CHAOS_EVENTS) --kills $(CHAOS_KILLS) \
		--relays $(CHAOS_RELAYS) --workers $(CHAOS_WORKERS)

# The same on a throwaway PostgreSQL server, four relays by default.
chaos-pg: CHAOS_RELAYS = 4
chaos-pg: $(PROGRAM) $(TOOL_BINS)
	$(Q)state=$(abspath $(BUILD)/chaos-pg-server); \
	uri=$$(PG_BIN=$(PG_BIN) sh tools/pg-server.sh start $$state) || exit 1; \
	rc=0; $(PG_BIN)/createdb --maintenance-db=$$uri/postgres chaos && \
	bash tools/chaos.sh $(PROGRAM) $(BUILD)/tools/receiver $(BUILD)/chaos-pg \
		--events $(CHAOS_EVENTS) --kills $(CHAOS_KILLS) \
		--relays $(CHAOS_RELAYS) --db $$uri/chaos || rc=1; \
	PG_BIN=$(PG_BIN) sh tools/pg-server.sh stop $$state; exit $$rc

# The daemon under valgrind through retries, a reload and SIGTERM.
valgrind: $(PROGRAM) $(TOOL_BINS)
	$(Q)bash tools/valgrind.sh $(PROGRAM) $(BUILD)/tools/receiver $(BUILD)/valgrind

install: $(PROGRAM)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(UNITDIR)
	install -m 755 $(PROGRAM) $(DESTDIR)$(BINDIR)/smartrelay
	install -m 644 smartrelay.1 $(DESTDIR)$(MANDIR)/man1/smartrelay.1
	sed 's|@BINDIR@|$(BINDIR)|g' tools/smartrelay.service > $(BUILD)/smartrelay.service
	install -m 644 $(BUILD)/smartrelay.service $(DESTDIR)$(UNITDIR)/smartrelay.service

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/smartrelay $(DESTDIR)$(MANDIR)/man1/smartrelay.1 \
	      $(DESTDIR)$(UNITDIR)/smartrelay.service

clean:
	rm -rf build bin

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
