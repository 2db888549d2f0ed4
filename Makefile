# The two commands: `make install`, then `make demo` (the main job) or `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export PYTHONUNBUFFERED := 1

.PHONY: install test test-all demo data stats bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip

install: $(BIN)/python  ## create .venv and install the pinned requirements (llama-cpp-python compiles: ~7 min)
	$(BIN)/pip install -r requirements.txt

test:  ## the default test suite (what CI runs)
	$(BIN)/python -m pytest -m "not slow" -q

test-all:  ## every test, the slow ones included
	$(BIN)/python -m pytest -q

data:  ## download MELD and EmoryNLP into $ERC_DATA_DIR (default ./data); prints how to get IEMOCAP
	$(BIN)/python -m erc.data.download

stats:  ## dataset statistics and label-distribution PNGs for every benchmark found
	$(BIN)/python -m erc.data.stats --out outputs/stats

demo:  ## the main job: the paper's pipeline, small and offline (~15-20 min on 2 CPU cores)
	$(BIN)/python -m erc.demo

bench:  ## every benchmark script in bench/, then one summary
	$(BIN)/python bench/run_all.py

clean:
	rm -rf outputs multirun .pytest_cache
