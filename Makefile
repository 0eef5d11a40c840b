# Two commands for a fresh machine: `make run` and `make test`.
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8501

.PHONY: run test lint bench setup browser clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

setup: $(VENV)/.installed

# Debian's Chromium for the browser tests (pip cannot bring a browser here; never `playwright install`).
browser:
	@test -x /usr/bin/chromium || { (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
		|| { echo "could not install chromium: run 'apt-get install chromium' as root"; exit 1; }; }

run: setup
	$(VENV)/bin/streamlit run streamlit_app.py --server.port $(PORT) --server.headless true --browser.gatherUsageStats false

test: setup browser
	$(PY) -m ruff check .
	$(PY) -m pytest

lint: setup
	$(PY) -m ruff check . && $(PY) -m ruff format --check .

bench: setup
	$(PY) bench/solvers.py && $(PY) bench/train_speed.py && $(PY) bench/ui_latency.py

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts
