# sbiwatch: build, demo and tests on a Debian machine with Swift 6.3 installed.
#   make demo   install missing Debian packages, build (release) and run the main job
#   make test   install missing Debian packages, build and run the whole test suite

DEBIAN_PACKAGES := libnetcdf-dev libarchive-dev libopenblas-dev netcdf-bin pkg-config
# What the tests use beyond the build: man (the install test renders the man page), and a real
# single-node Slurm for the generated job-array recipes (installed without recommends; where it
# cannot be installed the Slurm test skips, saying so).
TEST_PACKAGES := man-db
SLURM_PACKAGES := slurmctld slurmd slurm-client munge
SWIFT ?= swift
# One BLAS thread: sbiwatch parallelises across the batch itself.
export OPENBLAS_NUM_THREADS := 1

# make install [PREFIX=/usr/local] [DESTDIR=] [BINARY=path]: the release binary (or BINARY, already
# built), the man page, bash/zsh/fish completions, and the shipped pinned models with their models
# file under PREFIX/share/sbiwatch/models/ (found by the binary relative to itself).
PREFIX ?= /usr/local
DESTDIR ?=
BINARY ?= .build/release/sbiwatch
BINDIR = $(DESTDIR)$(PREFIX)/bin
MANDIR = $(DESTDIR)$(PREFIX)/share/man/man1
MODELDIR = $(DESTDIR)$(PREFIX)/share/sbiwatch/models
BASHDIR = $(DESTDIR)$(PREFIX)/share/bash-completion/completions
ZSHDIR = $(DESTDIR)$(PREFIX)/share/zsh/site-functions
FISHDIR = $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
SHIPPED_MODELS := $(wildcard fixtures/models/*.sbim)

# make fuzz [FUZZ_TARGET=observation|archive] [FUZZ_SECONDS=1800]: libFuzzer over the observation-file
# reader and the archive reader (Tests/Fuzz; seed corpus in Tests/Fuzz/corpus). Not run by CI.
FUZZ_TARGET ?= observation
FUZZ_SECONDS ?= 1800
# Fork mode goes on after a crash (netCDF-C itself crashes on some damaged headers; sbiwatch reads
# files in a child process first, see FileProbe), keeping every crashing input as an artifact.
FUZZ_FLAGS ?= -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1
FUZZ_DIR = .build-fuzz

.PHONY: deps test-deps apt-install build release demo bench test clean install uninstall fuzz fuzz-build

deps:
	@command -v $(SWIFT) >/dev/null || { echo "error: swift not found; install Swift 6.3 (https://swift.org/install) and put it on PATH" >&2; exit 1; }
	@$(MAKE) -s apt-install PACKAGES="$(DEBIAN_PACKAGES)"

test-deps:
	@$(MAKE) -s apt-install PACKAGES="$(TEST_PACKAGES)"
	@$(MAKE) -s apt-install PACKAGES="$(SLURM_PACKAGES)" APT_FLAGS=--no-install-recommends || \
	  echo "warning: Slurm could not be installed; the Slurm recipe test will be skipped" >&2

# Installs the Debian packages of PACKAGES that are missing (sudo unless root).
apt-install:
	@missing=""; for p in $(PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(APT_FLAGS) $$missing; \
	fi

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

# The main job on the shipped fixtures: the observation files of fixtures/inbox/ go through a
# fresh inbox in cron mode with the pinned models of fixtures/models/PINS; outputs in demo/out/.
demo: release
	.build/release/sbiwatch --version
	rm -rf demo && mkdir -p demo/in demo/out && cp fixtures/inbox/*.nc demo/in/
	.build/release/sbiwatch --inbox demo/in --outbox demo/out --config fixtures/models/PINS --once
	@echo "outputs in demo/out/ (open demo/out/*.report.html in a browser)"

bench: release
	.build/release/sbiwatch bench throughput
	.build/release/sbiwatch bench query --model fixtures/models/sird.sbim

test: build test-deps
	$(SWIFT) build --build-tests
	$(SWIFT) test

# The release build is brought up to date unless BINARY names another, already built binary
# (the install test installs its debug build). Not as root: `make release`, then
# `sudo make install BINARY=$PWD/.build/release/sbiwatch` (no build, so .build/ stays yours).
install: $(if $(filter .build/release/sbiwatch,$(BINARY)),release)
	@test -x $(BINARY) || { echo "error: $(BINARY) is not an executable; build it first" >&2; exit 1; }
	install -d $(BINDIR) $(MANDIR) $(MODELDIR) $(BASHDIR) $(ZSHDIR) $(FISHDIR)
	install -m 755 $(BINARY) $(BINDIR)/sbiwatch
	install -m 644 man/sbiwatch.1 $(MANDIR)/sbiwatch.1
	install -m 644 $(SHIPPED_MODELS) $(MODELDIR)/
	install -m 644 fixtures/models/PINS $(MODELDIR)/models
	SBIWATCH_NO_REEXEC=1 $(BINARY) --generate-completion-script bash > $(BASHDIR)/sbiwatch
	SBIWATCH_NO_REEXEC=1 $(BINARY) --generate-completion-script zsh > $(ZSHDIR)/_sbiwatch
	SBIWATCH_NO_REEXEC=1 $(BINARY) --generate-completion-script fish > $(FISHDIR)/sbiwatch.fish
	@echo "installed sbiwatch into $(DESTDIR)$(PREFIX) (models: $(MODELDIR)/models)"

uninstall:
	rm -f $(BINDIR)/sbiwatch $(MANDIR)/sbiwatch.1 $(BASHDIR)/sbiwatch $(ZSHDIR)/_sbiwatch $(FISHDIR)/sbiwatch.fish
	rm -f $(MODELDIR)/models $(addprefix $(MODELDIR)/,$(notdir $(SHIPPED_MODELS)))
	-rmdir $(MODELDIR) $(DESTDIR)$(PREFIX)/share/sbiwatch 2>/dev/null

fuzz-build: deps
	$(SWIFT) build -c release --scratch-path $(FUZZ_DIR) --product sbiwatch-fuzz -Xswiftc -sanitize=fuzzer -Xswiftc -DFUZZING

# Crashes are written to $(FUZZ_DIR)/crash-TARGET-*; replay one with
# `FUZZ_TARGET=TARGET .build/debug/sbiwatch-fuzz FILE` (the harness without libFuzzer).
fuzz: fuzz-build
	mkdir -p $(FUZZ_DIR)/corpus/$(FUZZ_TARGET)
	cp -n Tests/Fuzz/corpus/$(FUZZ_TARGET)/* $(FUZZ_DIR)/corpus/$(FUZZ_TARGET)/
	if [ "$(FUZZ_TARGET)" = archive ]; then printf '\000' | cat - fixtures/models/gaussian-linear.sbim > $(FUZZ_DIR)/corpus/archive/whole-gaussian-linear.bin; fi
	FUZZ_TARGET=$(FUZZ_TARGET) FUZZ_MODELS=fixtures/models $(FUZZ_DIR)/release/sbiwatch-fuzz $(FUZZ_DIR)/corpus/$(FUZZ_TARGET) \
	  $(FUZZ_FLAGS) -max_total_time=$(FUZZ_SECONDS) -timeout=20 -rss_limit_mb=4096 -max_len=65536 -print_final_stats=1 \
	  -artifact_prefix=$(FUZZ_DIR)/crash-$(FUZZ_TARGET)-

clean:
	rm -rf .build demo
