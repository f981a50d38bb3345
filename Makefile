# The two commands of the README: `make demo` and `make test`. Each builds its virtual environment
# (.venv, or VENV=...) on first use and installs fastcam into it the way the README says.
VENV ?= .venv
BIN   = $(VENV)/bin
PYTHON ?= python3

.PHONY: demo test install dev lint bench mutants fuzz wheel notebooks figures contact

$(BIN)/python:                       ## torch's CUDA build makes the environment about 6.5 GB: say so before pip runs out of room
	@free=$$(df -Pk $(dir $(abspath $(VENV))) | awk 'NR==2 {print int($$4/1048576)}'); [ "$$free" -ge 8 ] || { \
	  echo "fastcam's virtual environment needs about 8 GB free here (torch with its CUDA packages); $$free GB are free. Free some space (old clones and their .venv folders) and run again."; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -U pip

install: $(BIN)/python               ## fastcam and its runtime dependencies
	$(BIN)/pip install -q -e .

dev: $(BIN)/python                   ## + what the tests need (nbdev, pytest, peer libraries)
	$(BIN)/pip install -q -e '.[dev]'

demo: install                        ## the main job on the bundled data
	$(BIN)/fastcam demo

test: dev                            ## every notebook, then the pytest suite
	OMP_NUM_THREADS=1 $(BIN)/nbdev-test --n-workers 2 --timing    # a thread per notebook: two notebooks of two threads each on two cores wait on each other
	$(BIN)/pytest -q

lint: dev                            ## notebooks clean, module and README in step with them
	$(BIN)/nbdev-clean
	$(BIN)/nbdev-export
	$(BIN)/python tools/readme.py
	@git status --porcelain -- nbs fastcam README.md | grep . && { echo 'lint: the lines above changed: run `make lint` and commit'; exit 1; } || echo 'lint: clean'

wheel: dev                           ## the built wheel, installed (not editable) in a fresh environment and used from outside the repo
	VENV=$(VENV) tools/wheel_test.sh

bench: install                       ## speed and memory against the lower bound and the peers
	$(BIN)/pip install -q grad-cam torchcam captum timm
	$(BIN)/python bench/bench_gradcam.py
	$(BIN)/python bench/bench_callback.py
	$(BIN)/python bench/bench_methods.py
	$(BIN)/python bench/bench_train.py
	$(BIN)/python bench/bench_vit.py
	$(BIN)/python bench/bench_cli.py
	$(BIN)/python bench/bench_explain.py

fuzz: dev                            ## the trace on 10000 new random classifiers (CI runs 200 seeded ones in tests/test_fuzz.py)
	FASTCAM_FUZZ=10000 $(BIN)/pytest -q -p no:cacheprovider tests/test_fuzz.py --hypothesis-show-statistics

mutants: dev                         ## inject the bugs of tools/mutants.toml one at a time; print which the tests catch (20-30 min)
	$(BIN)/python tools/mutants.py

notebooks: dev                       ## run every notebook and save it with its outputs (about 8 min): what a reader sees on GitHub; contact/index.html: every figure with its text
	$(BIN)/python tools/notebooks.py
	$(BIN)/python tools/readme.py
	$(BIN)/python tools/contact.py

contact: dev                         ## contact/: every figure with the text around it, and each notebook rendered and screenshot (needs chromium)
	$(BIN)/python tools/contact.py --shots

figures: install                     ## the README's figures in nbs/images/ (runs the demo: about 2 min)
	$(BIN)/python tools/figures.py
