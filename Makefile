# The two commands of the README. Everything they need is set up here, from a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint fuzz bench differential clean system-packages

$(STAMP): pyproject.toml setup.py sdk/_accel.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## make run: the product on its embedded default (local nats-server, data in .flagstream/);
## options of `flagstream up` in ARGS, e.g. make run ARGS="--port 9000"
run: $(STAMP)
	$(BIN)/flagstream up --data-dir .flagstream $(ARGS)

# System packages the tests drive, installed in one apt-get step when one is missing: Debian's chromium (the browser
# tests; Playwright never downloads a browser here), openssl (the TLS tests make their certificates with it), curl
# (the docs' examples), node and npm (the client-side tests' OpenFeature clients, the test OpenID provider),
# prometheus (release plans' PromQL guardrails are tested against a real Prometheus scraping a test app).
# Only the missing ones are asked for (package:tool pairs): a node installed from elsewhere brings its own npm, which
# Debian's npm package would conflict with. apt-get waits up to 5 minutes for the dpkg lock when another apt holds it.
SYSTEM_PACKAGES := chromium:/usr/bin/chromium openssl:/usr/bin/openssl curl:/usr/bin/curl nodejs:/usr/bin/node \
                   npm:/usr/bin/npm prometheus:/usr/bin/prometheus
APT_GET         := DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -qq
system-packages:
	@missing=""; for pair in $(SYSTEM_PACKAGES); do [ -x "$${pair#*:}" ] || missing="$$missing $${pair%%:*}"; done; if [ -n "$$missing" ]; then echo "installing$$missing"; $(APT_GET) update && $(APT_GET) install -y $$missing >/dev/null; fi

# The real OpenFeature clients of the client-side tests (web SDK, React SDK, OFREP providers, esbuild), pinned by
# the committed package-lock.json, from the npm registry.
WEB := tests/clientside/web
$(WEB)/node_modules/.installed: $(WEB)/package-lock.json | system-packages
	npm ci --prefix $(WEB) --no-audit --no-fund --loglevel=error
	touch $@

# The single sign-on tests sign in through a real OpenID provider: node-oidc-provider from the npm registry,
# pinned by tests/oidc/package-lock.json.
OIDC_PROVIDER := tests/oidc/node_modules/oidc-provider/package.json
$(OIDC_PROVIDER): tests/oidc/package.json tests/oidc/package-lock.json | system-packages
	npm ci --prefix tests/oidc --no-audit --no-fund --loglevel=error
	touch $@

## make test: the whole test suite, lint (ruff check, ruff format --check) included
test: $(STAMP) system-packages $(WEB)/node_modules/.installed $(OIDC_PROVIDER)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

## make fuzz: the long fuzz of tests/fuzz: schemathesis over every operation (the short forms too) with 60
## examples per operation and phase, and the stream and webhook-address fuzz at the same depth. It prints its
## seed: FLAGSTREAM_FUZZ_SEED=<seed> make fuzz runs the same cases again; FLAGSTREAM_FUZZ_EXAMPLES=N another depth.
FUZZ_EXAMPLES ?= 60
fuzz: $(STAMP)
	FLAGSTREAM_FUZZ_EXAMPLES=$${FLAGSTREAM_FUZZ_EXAMPLES:-$(FUZZ_EXAMPLES)} FLAGSTREAM_FUZZ_EVERY_OPERATION=1 \
		$(BIN)/pytest tests/fuzz -p no:cacheprovider -s

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## make bench: every benchmark in its shorter form (bench/README.md has the full runs and the latest figures)
bench: $(STAMP)
	$(BIN)/python bench/eval_speed.py --quick
	$(BIN)/python bench/hot_path.py --turns 3
	$(BIN)/python bench/openfeature_overhead.py --quick
	$(BIN)/python bench/cold_start.py --runs 3 --scenarios 1000x1,10000x10
	$(BIN)/python bench/propagation.py --rounds 20
	$(BIN)/python bench/propagation_fleet.py --workers 4 --clients 250 --rounds 10
	$(BIN)/python bench/ofrep_latency.py
	$(BIN)/python bench/webhook_latency.py --changes 50
	$(BIN)/python bench/clientside.py --browsers 1000 --seconds 10 --changes 30
	$(BIN)/python bench/projector_throughput.py
	$(BIN)/python bench/as_of.py --events 100000 --runs 3
	$(BIN)/python bench/as_of_production.py --events 100000 --runs 3
	$(BIN)/python bench/regex_linear.py --patterns 500
	$(BIN)/python bench/track_cost.py --quick
	$(BIN)/python bench/release_guardian.py --trials 5 --aa 50 --aa-hold 120
	$(BIN)/python bench/sdk_credentials.py --rounds 5 --held 0,200

## make differential: every bucketing scheme against its home system's engine, 100,000 contexts per scheme;
## each of the five importers whole, 500 generated documents x 140 contexts each (over 100,000 answers each)
differential: $(STAMP)
	$(BIN)/python bench/differential.py --flags 200 --contexts 500 --document-contexts 140

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info tests/oidc/node_modules
