# sbiwatch: build, demo and tests on a Debian machine with Swift 6.3 installed.
#   make demo   install missing Debian packages, build (release) and run the main job
#   make test   install missing Debian packages, build and run the whole test suite

DEBIAN_PACKAGES := libnetcdf-dev libarchive-dev libopenblas-dev netcdf-bin pkg-config
SWIFT ?= swift
# One BLAS thread: sbiwatch parallelises across the batch itself.
export OPENBLAS_NUM_THREADS := 1

.PHONY: deps build release demo bench test clean

deps:
	@command -v $(SWIFT) >/dev/null || { echo "error: swift not found; install Swift 6.3 (https://swift.org/install) and put it on PATH" >&2; exit 1; }
	@missing=""; for p in $(DEBIAN_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
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
	.build/release/sbiwatch bench

test: build
	$(SWIFT) build --build-tests
	$(SWIFT) test

clean:
	rm -rf .build demo
