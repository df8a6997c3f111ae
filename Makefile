# The two commands of the README:  make demo  (run the product)  and  make test  (run the suite).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

VENDOR := funnel_site/dashboard/static/dashboard/vendor

.PHONY: demo test lint bench-ingest install
demo: $(VENV)/.installed $(VENDOR)/chart.umd.js  ## install, migrate, generate demo data, start web server + worker
	$(PY) manage.py run_demo $(DEMO_ARGS)

test: $(VENV)/.installed $(VENDOR)/chart.umd.js  ## the whole suite (SQLite + filesystem broker unless DATABASE_URL / CELERY_BROKER_URL are set)
	$(PY) -m pytest $(PYTEST_ARGS)

install: $(VENV)/.installed $(VENDOR)/chart.umd.js

# The web UI's chart library, pinned in package.json / package-lock.json, served from our static dir
# (no CDN: the machines running this have no internet). Debian: apt-get install npm.
$(VENDOR)/chart.umd.js: package.json package-lock.json
	npm ci --no-audit --no-fund --ignore-scripts --silent
	mkdir -p $(VENDOR)
	cp node_modules/chart.js/dist/chart.umd.js node_modules/chart.js/LICENSE.md $(VENDOR)/

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
