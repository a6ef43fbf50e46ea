# The two commands of the README. Everything they need is set up here, from a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench differential clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## make run: the product on its embedded default (local nats-server, data in .flagstream/);
## options of `flagstream up` in ARGS, e.g. make run ARGS="--port 9000"
run: $(STAMP)
	$(BIN)/flagstream up --data-dir .flagstream $(ARGS)

# The browser tests drive Debian's chromium (Playwright never downloads a browser here).
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null

## make test: the whole test suite, lint included
test: $(STAMP) $(CHROMIUM)
	$(BIN)/ruff check .
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## make bench: every benchmark in its shorter form (bench/README.md has the full runs and the latest figures)
bench: $(STAMP)
	$(BIN)/python bench/eval_speed.py --quick
	$(BIN)/python bench/openfeature_overhead.py --quick
	$(BIN)/python bench/cold_start.py --runs 3 --scenarios 1000x1,10000x10
	$(BIN)/python bench/propagation.py --rounds 20
	$(BIN)/python bench/propagation_fleet.py --workers 4 --clients 250 --rounds 10
	$(BIN)/python bench/ofrep_latency.py
	$(BIN)/python bench/webhook_latency.py --changes 50
	$(BIN)/python bench/projector_throughput.py
	$(BIN)/python bench/as_of.py --events 100000 --runs 3
	$(BIN)/python bench/regex_linear.py --patterns 500

## make differential: every bucketing scheme against its home system's engine, 100,000 contexts per scheme
differential: $(STAMP)
	$(BIN)/python bench/differential.py --flags 200 --contexts 500

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
