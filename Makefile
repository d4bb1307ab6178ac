# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
# TORCH is overridable, e.g. `make demo TORCH="torch --index-url https://download.pytorch.org/whl/cu124"`.
PYTHON ?= python3
TORCH ?= torch==2.13.0
VENV ?= .venv
BIN := $(VENV)/bin
DEMO ?= demo
CORPUS ?= $(DEMO)/corpus
WORKERS ?= 2

.PHONY: install demo test corpus clean bench

$(BIN)/tts: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(BIN)/tts

install: $(BIN)/tts

corpus: install
	$(BIN)/python -m tts_cli.sample_corpus --out $(CORPUS)

# Every stage is incremental or resumable: a second `make demo` redoes nothing that is done.
demo: corpus
	$(BIN)/tts preprocess $(CORPUS) --out $(DEMO)/work --workers $(WORKERS)
	$(BIN)/tts align $(DEMO)/work
	$(BIN)/python benchmarks/align_accuracy.py $(DEMO)/work $(CORPUS)/truth.json | tail -n 1
	$(BIN)/tts extract-pitch $(DEMO)/work --workers $(WORKERS)
	$(BIN)/tts train $(DEMO)/work --out $(DEMO)/run --config demo_es --resume
	$(BIN)/tts synthesize "Hola, ¿qué tal?" --run $(DEMO)/run -o $(DEMO)/hola.wav
	@echo "demo: listen to $(DEMO)/hola.wav (model: $(DEMO)/run/checkpoints/best.pt)"

test: install
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python benchmarks/preprocess.py
	$(BIN)/python benchmarks/pitch.py $(DEMO)/work --limit-seconds 150
	$(BIN)/python benchmarks/synthesis.py
	$(BIN)/python benchmarks/train_throughput.py

clean:
	rm -rf $(VENV) $(DEMO)
