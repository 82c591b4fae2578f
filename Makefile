# The two commands a newcomer types: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEV := OSAUTH_DEVELOPMENT=true
FLASK := $(VENV)/bin/flask --app wsgi

.PHONY: install run test lint screenshots

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

run: install
	$(DEV) $(FLASK) db upgrade
	$(DEV) $(FLASK) create-demo-admin
	$(DEV) $(FLASK) dev-server --port 5000 --mail-port 8025

test: install
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check .

screenshots: install
	$(PY) scripts/screenshots.py docs/screenshots
