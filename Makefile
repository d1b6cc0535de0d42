# The two commands the README promises: `make test` and `make lab`; plus bench and schema.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

LAB_PACKAGES := qemu-system-x86 ipxe-qemu ipxe ovmf dnsmasq-base busybox-static cpio iproute2 gcc libblkid-dev passwd
# LAB_POWER=redfish|ipmi: the machines are libvirt domains behind a BMC emulator (scripts/lab/lab_bmc.py).
LAB_POWER ?=
BMC_PACKAGES := libvirt-daemon libvirt-daemon-driver-qemu libvirt-clients libvirt-dev pkg-config gcc python3-dev ipmitool
ifneq ($(LAB_POWER),)
LAB_PACKAGES += $(BMC_PACKAGES)
endif
# The `lab` extra (libvirt-python) builds only where libvirt-dev is installed.
EXTRAS ?= test$(shell pkg-config --exists libvirt 2>/dev/null && echo ,lab)

.PHONY: test test-latest venv schema clean lab lab-deps bench bench-capacity bench-storm screenshot

$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c requirements.lock -e '.[$(EXTRAS)]'
	touch $@

venv: $(VENV)/.installed

## Run the whole test suite (tests needing root, QEMU or podman skip with a reason without them).
test: venv
	$(PY) -m pytest $(PYTEST_ARGS)

## The suite against the newest versions pyproject.toml allows instead of the lock: what a user who
## installs with plain pip gets. Its own venv, so the pinned one stays as it is.
LATEST_VENV ?= .venv-latest
test-latest:
	$(PYTHON) -m venv $(LATEST_VENV)
	$(LATEST_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LATEST_VENV)/bin/python -m pip install --quiet --upgrade --upgrade-strategy eager -e '.[$(EXTRAS)]'
	$(LATEST_VENV)/bin/python -m pip list --format freeze > $(LATEST_VENV)/versions.txt
	$(LATEST_VENV)/bin/python -m pytest $(PYTEST_ARGS)

## The whole chain on a virtual rack (root): generate, serve, PXE-boot 3 QEMU machines + 1 stranger,
## live status until every node installed, tear down. See scripts/lab/__main__.py.
## `make lab LAB_POWER=redfish` (or ipmi): the machines are powered on through BMC emulators instead.
lab: lab-deps venv
	@[ -z "$(LAB_POWER)" ] || $(PY) -c 'import libvirt' 2>/dev/null || $(PY) -m pip install --quiet -c requirements.lock -e '.[test,lab]'
	LAB_POWER=$(LAB_POWER) $(PY) scripts/lab run

lab-deps:
	@[ "$$(id -u)" = 0 ] || { echo "make lab needs root: network namespaces, taps, DHCP ports 67/4011"; exit 1; }
	@dpkg -s $(LAB_PACKAGES) >/dev/null 2>&1 || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(LAB_PACKAGES); }

## Benchmarks (not tests): assets vs nginx and http.server, the boot API vs a Matchbox-like
## reference, the boot API open-loop while images stream (bench/streaming.py), generate at scale.
## Prints a table, writes bench/results.json. Needs nginx and wrk.
bench: venv
	@command -v wrk >/dev/null && command -v nginx >/dev/null || { [ "$$(id -u)" = 0 ] && \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx-light wrk; } \
		|| { echo "make bench needs nginx and wrk (Debian: nginx-light wrk)"; exit 1; }
	@# Real Matchbox beside ours: BENCH_MATCHBOX, else the one scripts/matchbox-binary builds (cached).
	@mb="$${BENCH_MATCHBOX:-}"; if [ -z "$$mb" ] && command -v go >/dev/null; then \
		. scripts/lib/real-versions; mb="$$(scripts/matchbox-binary "$$MATCHBOX_VERSION" | tail -n1)/matchbox" || mb=""; fi; \
	BENCH_MATCHBOX="$$mb" $(PY) bench/run.py
	@$(MAKE) --no-print-directory bench-capacity

## The boot API's capacity beside real Matchbox (bench/capacity.py): serve with 1 and 2 workers and
## Matchbox on one generated data dir at 10-10,000 groups, searched rate by rate, interleaved.
## BENCH_QUICK=1: a smoke run that prints and does not replace the rows in bench/results.json.
bench-capacity: venv
	@. scripts/lib/real-versions; mb="$${BENCH_MATCHBOX:-$$(scripts/matchbox-binary "$$MATCHBOX_VERSION" | tail -n1)/matchbox}"; \
	BENCH_MATCHBOX="$$mb" $(PY) bench/capacity.py

## The boot storm (root): 50, 200 and 1,000 simulated machines through dnsmasq and serve in network
## namespaces (bench/storm.py; BENCH_STORM=50,200 for fewer), and the per-request neighbour lookup
## against tables of 100-4,000 entries (bench/neighbours.py). Adds `storm`, `neighbours` to bench/results.json.
STORM_PACKAGES := dnsmasq-base ipxe iproute2 nftables

bench-storm: venv
	@[ "$$(id -u)" = 0 ] || { echo "make bench-storm needs root: network namespaces, DHCP ports 67/4011"; exit 1; }
	@dpkg -s $(STORM_PACKAGES) >/dev/null 2>&1 || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(STORM_PACKAGES); }
	$(PY) bench/storm.py
	$(PY) bench/neighbours.py

## docs/status-page.png: the status page over the browser test's lab-like rack, photographed by headless
## Chromium and palette-quantized with pngquant (Debian: chromium pngquant) to stay small.
screenshot: venv
	@command -v chromium >/dev/null && command -v pngquant >/dev/null || { [ "$$(id -u)" = 0 ] && \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium pngquant; } \
		|| { echo "make screenshot needs chromium and pngquant"; exit 1; }
	@mkdir -p docs
	$(PY) -m tests.browser.lab_page docs/status-page.raw.png
	pngquant --force --quality 70-95 --speed 1 --output docs/status-page.png docs/status-page.raw.png
	@rm -f docs/status-page.raw.png
	@ls -l docs/status-page.png

## Regenerate cluster.schema.json from the model, and the reference table in docs/configuration.md from it.
schema: venv
	$(VENV)/bin/bootstrap-node schema > cluster.schema.json
	$(PY) -c 'import pathlib; from app.cluster.schema import splice_reference as s; \
		p = pathlib.Path("docs/configuration.md"); p.write_text(s(p.read_text()))'

clean:
	rm -rf $(VENV) $(LATEST_VENV) .pytest_cache
