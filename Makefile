# Two commands for a fresh machine: `make run` and `make test`.
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8501

.PHONY: run test lint bench setup system browser clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

setup: $(VENV)/.installed

# Debian packages the suite needs, installed when missing: Chromium for the browser tests (pip cannot
# bring a browser here; never `playwright install`) and redis-server. A fresh machine's package lists
# are empty, hence `apt-get update` first.
SYSTEM_PACKAGES := chromium=/usr/bin/chromium redis-server=/usr/bin/redis-server
system:
	@missing="$$(for p in $(SYSTEM_PACKAGES); do test -x "$${p#*=}" || printf '%s ' "$${p%%=*}"; done)"; \
	test -z "$$missing" || { (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing) \
		|| { echo "could not install $$missing: run 'apt-get install $$missing' as root"; exit 1; }; }

# The name the browser tests' skip messages give.
browser: system

# The same command as the installed `flow-matching-explorer` (explorer/serve.py), from the checkout.
run: setup
	$(PY) -m explorer.serve --server.port $(PORT)

# Two pytest workers (pytest-xdist): the suite is half waiting on servers and browsers, and CI has
# two cores. `make test TEST_WORKERS=0` runs it in one process.
TEST_WORKERS ?= 2
test: setup system
	$(PY) -m ruff check .
	$(PY) -m pytest -n $(TEST_WORKERS)

lint: setup
	$(PY) -m ruff check . && $(PY) -m ruff format --check .

bench: setup
	$(PY) bench/solvers.py && $(PY) bench/train_speed.py && $(PY) bench/ui_latency.py

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts
