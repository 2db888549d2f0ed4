# The two commands: `make demo` (the main job) and `make test`. Each installs what it needs first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Written after a successful install; older than requirements.txt means the pins changed: reinstall.
STAMP := $(VENV)/.installed
export PYTHONUNBUFFERED := 1
# llama-cpp-python compiles llama.cpp on install. Its default (-march=native) uses Intel AMX where the CPU has it,
# and AMX faults in virtual machines that do not enable it (a SIGSEGV in ggml_backend_amx_mul_mat): build for
# AVX2 instead, which runs on every x86-64 CPU of the last decade. Set CMAKE_ARGS yourself for CUDA or native tuning.
ifeq ($(shell uname -m),x86_64)
CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
export CMAKE_ARGS
endif

.PHONY: install test test-all lint demo data stats bench gpu-wheels clean

$(STAMP): requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -r requirements.txt
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install the pinned requirements (llama-cpp-python compiles: ~8 min)

test: $(STAMP)  ## the default test suite (what CI runs)
	$(BIN)/python -m pytest -m "not slow" -q

test-all: $(STAMP)  ## every test, the slow ones included
	$(BIN)/python -m pytest -q

lint: $(STAMP)  ## ruff over the whole tree (rules in pyproject.toml); CI runs it before the tests
	$(BIN)/ruff check .

data: $(STAMP)  ## download MELD and EmoryNLP into $ERC_DATA_DIR (default ./data); prints how to get IEMOCAP
	$(BIN)/python -m erc.data.download

stats: $(STAMP)  ## dataset statistics and label-distribution PNGs for every benchmark found
	$(BIN)/python -m erc.data.stats --out outputs/stats

# make demo BACKBONE=minilm: the pretrained all-MiniLM-L6-v2 instead of tiny random encoders, so the models learn
BACKBONE ?= tiny
demo: $(STAMP)  ## the main job: the paper's pipeline, small and offline (about 10 min on 2 CPU cores; BACKBONE=minilm: about 17)
	$(BIN)/python -m erc.demo --backbone $(BACKBONE)

bench: $(STAMP)  ## every benchmark script in bench/, then one summary
	$(BIN)/python bench/run_all.py

# What bench/gpu_check.py needs beyond a CUDA image's torch, transformers and Lightning, as wheels for its Python 3.12
# (pure Python, so any manylinux x86-64 machine takes them), at the versions installed here: docs/full-scale.md.
# antlr4-python3-runtime 4.9.3 (hydra-core's) is published only as source, so it is built into a wheel here.
GPU_WHEELS := hydra-core omegaconf
gpu-wheels: $(STAMP)  ## .whl/: the wheels the GPU check needs on a CUDA image without network (docs/full-scale.md)
	rm -rf .whl && mkdir .whl
	$(BIN)/pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
	  --platform manylinux_2_17_x86_64 -d .whl $(foreach p,$(GPU_WHEELS),$(p)==$$($(BIN)/pip show $(p) | sed -n 's/^Version: //p'))
	$(BIN)/pip wheel -q --no-deps -w .whl antlr4-python3-runtime==$$($(BIN)/pip show antlr4-python3-runtime | sed -n 's/^Version: //p')
	ls .whl

clean:
	rm -rf outputs multirun .pytest_cache
