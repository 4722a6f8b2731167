# Modelgate — the two commands: `make run` (embedded default) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python
PORT   ?= 8000
export MODELGATE_PUBLIC_URL ?= http://127.0.0.1:$(PORT)

.PHONY: install run test lint fmt migrate clean bench scale-test soak

install: $(VENV)/.installed frontend/node_modules/.package-lock.json

# Chart.js for the dashboard, from the npm registry (served from frontend/node_modules as static files).
frontend/node_modules/.package-lock.json: frontend/package-lock.json
	npm ci --prefix frontend --no-audit --no-fund --loglevel=error

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,ocr]'
	touch $@

migrate: install
	$(PY) manage.py migrate --noinput

# Set up and run the product: SQLite, a filesystem Celery broker, uvicorn + a real worker + beat.
run: migrate
	$(PY) manage.py collectstatic --noinput --verbosity 0
	$(PY) manage.py bootstrap
	@echo ""
	@echo "  Modelgate is starting at http://127.0.0.1:$(PORT)/  (sign-up: http://127.0.0.1:$(PORT)/accounts/signup/)"
	@echo "  Verification e-mails are printed below (console e-mail backend). Ctrl-C stops everything."
	@echo ""
	MODELGATE_PORT=$(PORT) $(BIN)/honcho start -f Procfile.demo

# Set up and pass the whole suite. Uses DATABASE_URL / REDIS_URL / CELERY_BROKER_URL when set
# (CI: PostgreSQL + Redis); without them it runs on SQLite and lists what it skipped and why.
test: install
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

fmt: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) data staticfiles .pytest_cache frontend/node_modules artifacts

BENCH_LITELLM := bench/.venv-litellm

# Benchmarks (docs/benchmarks.md): nginx + wrk from Debian, LiteLLM in its own venv, PostgreSQL +
# Redis on localhost. About 12 minutes. BENCH_ARGS: --rounds, --streams 500,1000,2000, --only …, --skip-litellm.
bench: install $(BENCH_LITELLM)/.installed
	command -v nginx >/dev/null && command -v wrk >/dev/null || (apt-get update && apt-get install -y nginx wrk)
	$(PY) bench/run_all.py $(BENCH_ARGS)

$(BENCH_LITELLM)/.installed:
	test -x $(BENCH_LITELLM)/bin/python || $(PYTHON) -m venv $(BENCH_LITELLM)
	$(BENCH_LITELLM)/bin/pip install --quiet 'litellm[proxy]' py-spy
	touch $@

# Multi-node proof (docs/operations.md, "Multi-node run"): two web + two worker nodes, each in its own
# network namespace (root + iproute2; else loopback ports), on one PostgreSQL + Redis; kills included.
# SCALE_DATABASE_URL / SCALE_REDIS_URL / SCALE_BROKER_URL (Redis dbs 9 and 10 by default — flushed).
scale-test: install
	command -v ip >/dev/null || [ "$$(id -u)" != 0 ] || (apt-get update && apt-get install -y iproute2)
	$(PY) -m tests.scale $(SCALE_ARGS)

# The seeded money-path simulation, long (tests/sim; docs/reliability.md): new random seeds of
# MODELGATE_SIM_STEPS steps for SOAK_MINUTES, then the figures go into docs/reliability.md.
# MODELGATE_SIM_SEED=<n> replays one seed (nothing written). Uses DATABASE_URL / REDIS_URL /
# CELERY_BROKER_URL like `make test`.
SOAK_MINUTES ?= 10
MODELGATE_SIM_STEPS ?= 300
SOAK_FAULT_SECONDS ?= 300
soak: install
	SOAK_MINUTES=$(SOAK_MINUTES) MODELGATE_SIM_STEPS=$(MODELGATE_SIM_STEPS) MODELGATE_SIM_SUMMARY=artifacts/sim-soak.json \
		$(PY) -m pytest tests/sim/test_money_path.py::test_money_path_simulation -x -p no:cacheprovider $(PYTEST_ARGS)
	$(PY) -m tests.sim.report artifacts/sim-soak.json $(if $(MODELGATE_SIM_SEED),,docs/reliability.md)
	# then load with faults for SOAK_FAULT_SECONDS: private PostgreSQL/Redis restarted, killed and
	# flushed under SDK load (tests/faults; figures in artifacts/faults-figures.json)
	MODELGATE_FAULT_SECONDS=$(SOAK_FAULT_SECONDS) $(PY) -m pytest tests/faults/test_load_with_faults.py -x -p no:cacheprovider
