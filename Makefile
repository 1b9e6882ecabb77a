# tokenbroker: `make run` starts the service, `make test` runs every test.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench venv idp browser prometheus screenshots dashboard-picture clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,lint]'
	touch $(STAMP)

venv: $(STAMP)

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

test: $(STAMP) idp browser prometheus
	$(BIN)/python -m pytest -q

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
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(STAMP) idp
	@command -v wrk >/dev/null || scripts/need-package wrk
	$(BIN)/python -m tests.bench.token_endpoint
	$(BIN)/python -m tests.bench.refresh_worker
	$(BIN)/python -m tests.bench.webhooks
	$(BIN)/python -m tests.bench.slow_provider

clean:
	rm -rf $(VENV) var tests/idp/node_modules
