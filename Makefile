# The two commands of the README: `make run` and `make test`. Both build .venv when it is missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PORT ?= 8000

.PHONY: run test bench lint clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "unified needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

# `make run`: the server with examples/ as its workflows folder, on .unified/unified.db. The admin key is made once
# (random, kept in .unified/admin.key, which git ignores) and handed to the server as UNIFIED_ADMIN_KEY.
run: $(STAMP)
	@mkdir -p .unified
	@test -s .unified/admin.key || (umask 077 && $(PY) -c 'import secrets; print(secrets.token_urlsafe(32))' > .unified/admin.key)
	@echo "unified server: http://127.0.0.1:$(PORT)  (API docs: http://127.0.0.1:$(PORT)/docs)"
	@echo "admin API key:  $$(cat .unified/admin.key)"
	@echo "try:  curl -H \"X-API-Key: $$(cat .unified/admin.key)\" http://127.0.0.1:$(PORT)/workflows"
	UNIFIED_ADMIN_KEY="$$(cat .unified/admin.key)" $(VENV)/bin/unified server --port $(PORT) --workflows examples

test: $(STAMP)
	@command -v chromium >/dev/null 2>&1 || (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium) >/dev/null 2>&1 || echo "chromium could not be installed: the browser tests will be skipped"
	$(PY) -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

lint: $(STAMP)
	$(PY) -m ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
