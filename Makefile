# The two commands of the README: `make run` and `make test`. Both build .venv when it is missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PORT ?= 8000

.PHONY: run test bench bench-compare bench-instructions bench-peers bench-plot lint clean

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

# `make bench`: W1-W5 on memory and SQLite (PostgreSQL too when UNIFIED_BENCH_POSTGRES_URL is set), start-up,
# latency and W1 against N; see docs/performance.md.
bench: $(STAMP)
	$(PY) benchmarks/run_all.py $(BENCH_ARGS)

# `make bench-peers`: Dask, huey and Celery in a scratch venv (not dependencies of unified) run the same workloads
# beside unified's. Celery needs Redis (CELERY_BROKER, default redis://127.0.0.1:6379/15).
PEERS_VENV ?= .peers-venv
$(PEERS_VENV)/.installed:
	$(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/pip install --quiet 'dask' 'huey' 'celery[redis]' 'matplotlib'
	@touch $@

bench-peers: $(STAMP) $(PEERS_VENV)/.installed
	$(PY) benchmarks/peers.py --peers-python $(PEERS_VENV)/bin/python $(BENCH_ARGS)

# `make bench-compare BASE=<git ref>`: one workload with this checkout's code against BASE's, in alternated runs
# (BENCH_ARGS: --workload W2 --store memory --runs 8 --scale 1.0)
bench-compare: $(STAMP)
	$(PY) benchmarks/compare.py $(BASE) $(BENCH_ARGS)

# `make bench-instructions BASE=<git ref>`: instructions per task of one workload, counted by valgrind (steady where
# the hosts' wall times are not), this checkout's code against BASE's (BENCH_ARGS: --workload W1 --store memory)
bench-instructions: $(STAMP)
	$(PY) benchmarks/instructions.py $(BASE) $(BENCH_ARGS)

# docs/images/w1-linearity.png from the newest `make bench` result (matplotlib from the scratch venv)
bench-plot: $(PEERS_VENV)/.installed
	$(PEERS_VENV)/bin/python benchmarks/plot.py

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
