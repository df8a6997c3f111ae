# The two commands of the README:  make demo  (run the product)  and  make test  (run the suite).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: demo test lint bench-ingest install
demo: $(VENV)/.installed  ## install, migrate, generate demo data, start web server + worker
	$(PY) manage.py run_demo $(DEMO_ARGS)

test: $(VENV)/.installed  ## the whole suite (SQLite + filesystem broker unless DATABASE_URL / CELERY_BROKER_URL are set)
	$(PY) -m pytest $(PYTEST_ARGS)

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
