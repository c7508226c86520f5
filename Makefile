# The two commands in the README: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/retention
TEST_REDIS_URL ?= redis://127.0.0.1:6379/0
PYTEST_ARGS ?=

.PHONY: demo test lint format bench clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is needed; set PYTHON=python3.11"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[test]"
	command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)
	@touch $@ $(VENV)/.installed

## Set up and run the platform with demo data at http://127.0.0.1:8000/
demo: $(VENV)/.installed
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py demo_setup
	$(BIN)/python manage.py seed_demo --tenant demo --customers 2000 --days 365 --seed 1 --if-empty
	$(BIN)/python manage.py demo_segments --tenant demo
	$(BIN)/python manage.py demo_messaging --tenant demo
	$(BIN)/python manage.py install_journeys --tenant demo
	$(BIN)/python manage.py score_churn --tenant demo
	$(BIN)/python manage.py demo_experiments --tenant demo
	$(BIN)/python manage.py simulate --tenant demo --days 7 --seed 1 --once
	$(BIN)/python manage.py refresh_insights --tenant demo --ahead
	$(BIN)/python manage.py runserver 127.0.0.1:8000

## Set up and run the whole test suite against PostgreSQL and Redis
test: $(VENV)/.installed-test
	@export DATABASE_URL="$${DATABASE_URL:-$(TEST_DATABASE_URL)}" \
	        REDIS_URL="$${REDIS_URL:-$(TEST_REDIS_URL)}"; \
	$(BIN)/python scripts/check_services.py && \
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.installed-test
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(VENV)/.installed-test
	@ls bench/*.py 2>/dev/null | grep -v __init__ || echo "no benchmarks yet"

clean:
	rm -rf $(VENV) db.sqlite3 staticfiles .pytest_cache
