# The two commands of the README. Each bootstraps what it needs: a local .venv
# holding hatch (and uv), then hatch builds the environments it runs in.
# Hatch keeps its environments in .hatch/ so a clone is self-contained.

PYTHON ?= python3
VENV := .venv
HATCH := $(VENV)/bin/hatch
export HATCH_DATA_DIR := $(CURDIR)/.hatch
export HATCH_CACHE_DIR := $(CURDIR)/.hatch/cache

# Every suite the project has; `make test` runs them all and fails if one fails.
TEST_STEPS := \
	lint:all \
	test-persist:run \
	test-persist-bare:run \
	test-core:run \
	test-core-pure:run \
	test-memmap:run \
	test-cache:run \
	test-joblib:run \
	integration:run \
	clients:run \
	ray:run \
	docs:plots \
	docs:build \
	docs:doctest

.PHONY: demo test

demo: $(HATCH)
	$(HATCH) run python docs/demo.py

test: $(HATCH)
	@failed=""; \
	for step in $(TEST_STEPS); do \
		echo ""; echo "==> hatch run $$step"; \
		$(HATCH) run $$step || failed="$$failed $$step"; \
	done; \
	echo ""; \
	if [ -n "$$failed" ]; then echo "make test: FAILED:$$failed"; exit 1; fi; \
	echo "make test: every step passed"

$(HATCH):
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check "hatch>=1.16,<2" "uv>=0.4"
