# dina: `make demo` runs the main job, `make test` the tests. Both set up everything first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint format clean speaker

install: $(STAMP)

$(STAMP): requirements.txt pyproject.toml scripts/install-system-deps.sh
	bash scripts/install-system-deps.sh
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.txt
	$(BIN)/pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: install
	$(BIN)/dina demo

lint: install
	$(BIN)/ruff check dina tests
	$(BIN)/ruff format --check dina tests
	$(BIN)/mypy

format: install
	$(BIN)/ruff format dina tests
	$(BIN)/ruff check --fix dina tests

test: lint
	$(BIN)/python -m pytest -q

# Optional: the speaker-similarity judge of `dina audio eval` (see requirements-speaker.txt).
speaker: install
	$(BIN)/pip install -q --disable-pip-version-check -r requirements-speaker.txt
	$(BIN)/pip install -q --disable-pip-version-check --no-deps resemblyzer==0.1.4

clean:
	rm -rf $(VENV) runs .pytest_cache
