# asyncgate: build, run the embedded default, test, install.
# `make run` and `make check` first install missing Debian packages (scripts/deps.sh).

PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
LIBEXECDIR ?= $(PREFIX)/lib/asyncgate
SYSCONFDIR ?= $(PREFIX)/etc
DATADIR    ?= $(PREFIX)/share/asyncgate

CC ?= cc
PKGS := libpq libcurl json-c libcrypto
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lfcgi -pthread

# Project flags live here, so a user's CFLAGS= adds to them rather than replacing them.
# AG_BASE_CFLAGS is what every build shares (the fuzz build uses its own optimisation).
AG_BASE_CFLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L -pthread -Wall -Wextra -Werror -Wshadow -Wformat=2 \
	-Wstrict-prototypes -Wmissing-prototypes -Wold-style-definition -g -MMD -MP \
	$(PKG_CFLAGS)
AG_CFLAGS := $(AG_BASE_CFLAGS) -O2
ifeq ($(SANITIZE),1)
AG_CFLAGS += -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
AG_LDFLAGS += -fsanitize=address,undefined
B := build/san
else ifeq ($(TSAN),1)
AG_CFLAGS += -fsanitize=thread
AG_LDFLAGS += -fsanitize=thread
B := build/tsan
else
AG_CFLAGS += -D_FORTIFY_SOURCE=2 -fstack-protector-strong
B := build
endif

LIB_SRC  := $(sort $(wildcard lib/*.c))
API_SRC  := $(sort $(wildcard cgi-bin/*.c))
DRN_SRC  := drainer/main.c
ADM_SRC  := drainer/admin.c
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
IT_SRC   := $(sort $(wildcard tests/integration/test_*.c))

LIB_OBJ := $(LIB_SRC:%.c=$(B)/%.o)
API_OBJ := $(API_SRC:%.c=$(B)/%.o)
LIBAG   := $(B)/libag.a
API_BIN := $(B)/asyncgate.fcgi
DRN_OBJ := $(DRN_SRC:%.c=$(B)/%.o)
DRN_BIN := $(B)/asyncgate-drainer
ADM_OBJ := $(ADM_SRC:%.c=$(B)/%.o)
ADM_BIN := $(B)/asyncgate-admin
# The HTTP target of the integration tests, and the demo target of `make run` (libmicrohttpd).
TGT_BIN := $(B)/ag_target
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(B)/unit/%)
IT_BIN  := $(IT_SRC:tests/integration/%.c=$(B)/it/%)

.PHONY: all deps run check unit unit-san integration tsan-accept conf-check bench bench-quick \
	install \
	uninstall clean format lint fuzz fuzz-smoke fuzz-build fuzz-merge

all: $(API_BIN) $(DRN_BIN) $(ADM_BIN) $(TGT_BIN)

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(AG_CFLAGS) $(CFLAGS) -I lib -c -o $@ $<

$(LIBAG): $(LIB_OBJ)
	ar rcs $@ $^

$(API_BIN): $(API_OBJ) $(LIBAG)
	$(CC) $(AG_LDFLAGS) $(LDFLAGS) -o $@ $(API_OBJ) $(LIBAG) $(PKG_LIBS)

$(DRN_BIN): $(DRN_OBJ) $(LIBAG)
	$(CC) $(AG_LDFLAGS) $(LDFLAGS) -o $@ $(DRN_OBJ) $(LIBAG) $(PKG_LIBS)

$(ADM_BIN): $(ADM_OBJ) $(LIBAG)
	$(CC) $(AG_LDFLAGS) $(LDFLAGS) -o $@ $(ADM_OBJ) $(LIBAG) $(PKG_LIBS)

$(TGT_BIN): tests/target/ag_target.c
	@mkdir -p $(dir $@)
	$(CC) $(AG_CFLAGS) $(CFLAGS) $(shell pkg-config --cflags libmicrohttpd 2>/dev/null) -o $@ $< \
		$(AG_LDFLAGS) $(LDFLAGS) $(shell pkg-config --libs libmicrohttpd json-c libcrypto \
		2>/dev/null) -lpthread

# Unit tests may #include the .c under test to reach its statics; they link libag for the rest.
$(B)/unit/%: tests/unit/%.c $(LIBAG)
	@mkdir -p $(dir $@)
	$(CC) $(AG_CFLAGS) $(CFLAGS) -Wno-missing-prototypes -I lib -I cgi-bin -o $@ $< $(LIBAG) \
		$(AG_LDFLAGS) $(LDFLAGS) $(PKG_LIBS) -lcmocka

$(B)/it/%: tests/integration/%.c $(LIBAG)
	@mkdir -p $(dir $@)
	$(CC) $(AG_CFLAGS) $(CFLAGS) -Wno-missing-prototypes -I lib -o $@ $< $(LIBAG) \
		$(AG_LDFLAGS) $(LDFLAGS) $(PKG_LIBS)

# libFuzzer harnesses (tests/fuzz), built with clang into their own tree: lib/ again with
# coverage instrumentation, ASan and UBSan (every finding aborts, so libFuzzer keeps the input).
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 600
FUZZ_SMOKE_SECONDS ?= 8
FZ := build/fuzz
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS := $(AG_BASE_CFLAGS) -O1 $(FUZZ_SAN) -fsanitize=fuzzer-no-link
FUZZ_SRC := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=$(FZ)/%)
FUZZ_LIB_OBJ := $(LIB_SRC:%.c=$(FZ)/%.o)

$(FZ)/lib/%.o: lib/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(CFLAGS) -I lib -c -o $@ $<

$(FZ)/libag.a: $(FUZZ_LIB_OBJ)
	ar rcs $@ $^

# A harness may #include the .c under test (as unit tests do) to reach its statics.
$(FZ)/fuzz_%: tests/fuzz/fuzz_%.c $(FZ)/libag.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(CFLAGS) -fsanitize=fuzzer -I lib -o $@ $< $(FZ)/libag.a \
		$(LDFLAGS) $(PKG_LIBS)

fuzz-build: $(FUZZ_BIN)

# Each harness for FUZZ_SECONDS on a scratch copy of its seed corpus (build/fuzz/corpus);
# findings land in build/fuzz/artifacts. tests/fuzz/README.md says how to keep new inputs.
fuzz: fuzz-build
	@bash tests/fuzz/run.sh run $(FUZZ_SECONDS) $(FUZZ_BIN)

# Each harness briefly over its seeds: one "ok - fuzz smoke NAME" line each, for make check.
fuzz-smoke: fuzz-build
	@bash tests/fuzz/run.sh smoke $(FUZZ_SMOKE_SECONDS) $(FUZZ_BIN)

# Adds the scratch inputs that reach new coverage to the repository's seed corpus.
fuzz-merge: fuzz-build
	@bash tests/fuzz/run.sh merge 0 $(FUZZ_BIN)

deps:
	@bash scripts/deps.sh

run: deps
	@$(MAKE) --no-print-directory all
	@bash scripts/run.sh

unit: $(UNIT_BIN)
	@bash tests/unit/run.sh $(UNIT_BIN)

# The unit tests again under AddressSanitizer and UndefinedBehaviorSanitizer.
unit-san:
	@$(MAKE) --no-print-directory SANITIZE=1 unit

integration: $(API_BIN) $(DRN_BIN) $(ADM_BIN) $(TGT_BIN) $(IT_BIN)
	@bash tests/integration/run.sh

# The threaded handler (worker threads, the committer) under ThreadSanitizer: test_commitq,
# then test_accept's bursts against build/tsan/asyncgate.fcgi; a data race stops the program.
tsan-accept: $(API_BIN) $(DRN_BIN) $(ADM_BIN) $(TGT_BIN) $(IT_BIN)
	@$(MAKE) --no-print-directory TSAN=1 build/tsan/asyncgate.fcgi build/tsan/unit/test_commitq
	@TSAN_OPTIONS="halt_on_error=1 $(TSAN_OPTIONS)" bash tests/unit/run.sh \
		build/tsan/unit/test_commitq
	@TSAN_OPTIONS="halt_on_error=1 $(TSAN_OPTIONS)" AG_BIN=build/tsan/asyncgate.fcgi \
		AG_ONLY='test_accept*' bash tests/integration/run.sh

# Every configuration key must be in the sample file and the README (PgBouncer optscan.sh).
conf-check: $(API_BIN)
	@bash tests/conf-check.sh $(API_BIN)

check: deps
	@$(MAKE) --no-print-directory all
	@bash tests/check.sh

# make bench: the performance figures and their baselines, on loopback, in one bounded run
# (bench/README.md). bench-quick: every step with small sizes, for development.
# BENCH_ONLY=ceiling,accept,drain,latency,deferred,scale picks steps.
BENCH_BIN := $(B)/bench/fcgi_min $(B)/bench/fcgi_min_insert $(B)/bench/ag_load \
	$(B)/bench/ag_query

$(B)/bench/fcgi_min: bench/fcgi_min.c
	@mkdir -p $(dir $@)
	$(CC) $(AG_CFLAGS) $(CFLAGS) -o $@ $< $(AG_LDFLAGS) $(LDFLAGS) -lfcgi

$(B)/bench/fcgi_min_insert: bench/fcgi_min.c
	@mkdir -p $(dir $@)
	$(CC) $(AG_CFLAGS) $(CFLAGS) -DFCGI_MIN_INSERT -o $@ $< $(AG_LDFLAGS) $(LDFLAGS) \
		$(shell pkg-config --libs libpq 2>/dev/null) -lfcgi

$(B)/bench/ag_load: bench/ag_load.c
	@mkdir -p $(dir $@)
	$(CC) $(AG_CFLAGS) $(CFLAGS) -o $@ $< $(AG_LDFLAGS) $(LDFLAGS) \
		$(shell pkg-config --libs libcurl 2>/dev/null)

$(B)/bench/ag_query: bench/ag_query.c $(LIBAG)
	@mkdir -p $(dir $@)
	$(CC) $(AG_CFLAGS) $(CFLAGS) -I lib -o $@ $< $(LIBAG) $(AG_LDFLAGS) $(LDFLAGS) $(PKG_LIBS)

bench: deps
	@$(MAKE) --no-print-directory all $(BENCH_BIN)
	@bash bench/run.sh

bench-quick: deps
	@$(MAKE) --no-print-directory all $(BENCH_BIN)
	@BENCH_QUICK=1 bash bench/run.sh

# The drainer's cron line and systemd units, and the web server configurations, go to
# $(DATADIR)/examples: their paths assume PREFIX=/usr/local, so an operator reads them before
# copying them into place.
install: $(API_BIN) $(DRN_BIN) $(ADM_BIN)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBEXECDIR) $(DESTDIR)$(SYSCONFDIR) \
		$(DESTDIR)$(DATADIR)/sql $(DESTDIR)$(DATADIR)/examples
	install -m 0755 $(API_BIN) $(DESTDIR)$(LIBEXECDIR)/asyncgate.fcgi
	install -m 0755 $(DRN_BIN) $(DESTDIR)$(BINDIR)/asyncgate-drainer
	install -m 0755 $(ADM_BIN) $(DESTDIR)$(BINDIR)/asyncgate-admin
	install -m 0644 conf/asyncgate-drainer.cron conf/systemd/*.service conf/systemd/*.timer \
		conf/lighttpd.conf conf/apache-*.conf conf/nginx-fastcgi.conf \
		$(DESTDIR)$(DATADIR)/examples/
	install -m 0755 sql/migrate.sh $(DESTDIR)$(BINDIR)/asyncgate-migrate
	install -m 0644 sql/*.sql $(DESTDIR)$(DATADIR)/sql/
	install -m 0644 conf/asyncgate.conf $(DESTDIR)$(SYSCONFDIR)/asyncgate.conf.sample

uninstall:
	rm -f $(DESTDIR)$(LIBEXECDIR)/asyncgate.fcgi $(DESTDIR)$(BINDIR)/asyncgate-migrate \
		$(DESTDIR)$(BINDIR)/asyncgate-drainer $(DESTDIR)$(BINDIR)/asyncgate-admin \
		$(DESTDIR)$(SYSCONFDIR)/asyncgate.conf.sample
	rm -rf $(DESTDIR)$(DATADIR)/sql $(DESTDIR)$(DATADIR)/examples

clean:
	rm -rf build

# Table-shaped tests (test_api.c and the unit tests) keep their hand layout: clang-format would
# reflow their tables.
FORMAT_KEEP := tests/integration/test_api.c $(wildcard tests/unit/test_*.c)
format:
	clang-format -i $(filter-out $(FORMAT_KEEP),$(wildcard lib/*.c lib/*.h cgi-bin/*.c \
		cgi-bin/*.h drainer/*.c tests/unit/*.c tests/integration/*.c tests/target/*.c \
		tests/fuzz/*.c bench/*.c))

lint:
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability --std=c11 \
		--suppress=missingIncludeSystem -I lib lib cgi-bin drainer

-include $(shell find build -name '*.d' 2>/dev/null)
