# tokenbroker: `make run` starts the service, `make test` runs every test.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TEST_LOCK   := requirements/test.lock
DEPLOY_LOCK := requirements/deploy.lock
LOCK_FLAGS  ?=
COMPILE     := $(BIN)/uv pip compile pyproject.toml --universal --python-version 3.11 \
               --generate-hashes --custom-compile-command "make lock" --quiet $(LOCK_FLAGS)

.PHONY: run test lint lock bench venv idp browser prometheus mail screenshots dashboard-picture clean

# Every dependency, transitive ones too, at the version and hashes of the test lock; then the
# project itself, editable, without dependencies (hatchling, its build backend, is in the lock).
$(STAMP): pyproject.toml $(TEST_LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r $(TEST_LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

venv: $(STAMP)

# Re-pin after changing pyproject.toml's dependencies: the test environment (extras test and
# lint) and the image's (the service alone, at the test environment's versions). Pins that
# still fit are kept; `make lock LOCK_FLAGS=--upgrade` moves every one to the newest release.
lock: $(STAMP)
	$(COMPILE) --extra test --extra lint -o $(TEST_LOCK)
	$(COMPILE) --constraint $(TEST_LOCK) -o $(DEPLOY_LOCK)

run: $(STAMP)
	$(BIN)/tokenbroker dev

# Node >= 20 runs the test OAuth2 provider (tests/idp); installed here when missing and root.
idp:
	@command -v node >/dev/null && command -v npm >/dev/null || scripts/need-package nodejs npm
	test -d tests/idp/node_modules || (cd tests/idp && npm ci --no-audit --no-fund --loglevel=error)

# Headless Chromium and its WebDriver for the settings-page browser test (tests/admin).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || scripts/need-package chromium chromium-driver

# Debian's prometheus package: promtool checks and unit-tests deploy/prometheus/alerts.yml, and
# a real Prometheus evaluates the dashboard's queries (tests/test_deploy_*.py). No service starts.
prometheus:
	@command -v promtool >/dev/null && command -v prometheus >/dev/null || scripts/need-package --no-install-recommends prometheus

# Debian's Dovecot (IMAP and submission): the mailbox check's tests start their own on loopback
# (tests/support/dovecot.py); the package's system service is not used.
mail:
	@test -x /usr/sbin/dovecot && test -x /usr/lib/dovecot/imap && test -x /usr/lib/dovecot/submission || scripts/need-package dovecot-imapd dovecot-submissiond

# A coverage report of service/ and workers/ (as run in the test process) ends the output.
test: $(STAMP) idp browser prometheus mail
	$(BIN)/python -m pytest -q --cov --cov-report=term:skip-covered

# Refresh docs/screenshots/ from the browser test (README shows two of them).
screenshots: $(STAMP) idp browser
	TOKENBROKER_SCREENSHOTS=$(CURDIR)/docs/screenshots $(BIN)/python -m pytest -q tests/admin/test_browser.py

# Redraw docs/screenshots/dashboard.png: the dashboard's panels from a real Prometheus scraping a
# web and a worker under a three-minute load (matplotlib; Grafana is not packaged here).
dashboard-picture: $(STAMP) idp prometheus
	$(BIN)/python -m pip install --quiet -e '.[pictures]'
	$(BIN)/python -m tests.pictures.dashboard docs/screenshots/dashboard.png

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# Rewrite README's environment table and deploy/tokenbroker.env.example from service/config_table.py.
.PHONY: config-docs
config-docs: $(STAMP)
	$(BIN)/python -m service.ops.config_docs

bench: $(STAMP) idp
	@command -v wrk >/dev/null || scripts/need-package wrk
	$(BIN)/python -m tests.bench.token_endpoint
	$(BIN)/python -m tests.bench.refresh_worker
	$(BIN)/python -m tests.bench.webhooks
	$(BIN)/python -m tests.bench.slow_provider
	$(BIN)/python -m tests.bench.redis_memory

# A million accounts end to end (minutes): import rate, Redis bytes per account, claim cost,
# a worker's refresh rate and lag among them all, export time and peak RSS, admin page and
# search latency. `make bench-scale ACCOUNTS=100000` for a smaller run.
ACCOUNTS ?= 1000000
.PHONY: bench-scale
bench-scale: $(STAMP)
	$(BIN)/python -m tests.bench.scale --accounts $(ACCOUNTS)

clean:
	rm -rf $(VENV) var tests/idp/node_modules
