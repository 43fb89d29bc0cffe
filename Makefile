# Two commands do all set-up on a fresh machine:
#   make demo   -> local Kafka broker, the worker, live simulated traffic, live scores/triggers
#   make test   -> unit, property, agent and integration tests (through a real Kafka broker)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench clean broker-down

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/engage demo

test: $(STAMP)
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m benchmarks.bench_replay
	$(BIN)/python -m benchmarks.bench_worker
	$(BIN)/python -m benchmarks.bench_churn

broker-down: $(STAMP)
	$(BIN)/engage broker down

clean:
	rm -rf $(VENV) var deploy/.kafka
