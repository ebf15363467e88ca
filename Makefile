# Two commands on a fresh machine: `make app` and `make test`.
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
PORT    ?= 8501
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install test test-all lint app demo clean

install: $(STAMP)

# Idempotent: re-runs only when pyproject.toml changes. torch is pinned first so pip takes the
# CPU wheel (a bare `torch` would pull a multi-GB CUDA build).
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

test: install
	$(PY) -m pytest -m "not slow" -q -p no:cacheprovider --timeout 900

test-all: install
	$(PY) -m pytest -q -p no:cacheprovider --timeout 1800

lint: install
	$(PY) -m ruff check recommender app tests benchmarks
	$(PY) -m mypy recommender

app: install
	$(VENV)/bin/recommender app --port $(PORT)

demo: install
	$(VENV)/bin/recommender compare glue_rte --methods full_ft,lora,seq_bn,ia3 --max-train 400 \
		--max-dev 200 --time-budget 60 --max-epochs 2 --out runs/demo

clean:
	rm -rf $(VENV) runs .pytest_cache
