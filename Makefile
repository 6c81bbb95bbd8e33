# Set-up and entry points. `make demo` and `make test` each create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The torch build to install; these wheels are the ones the project is developed and tested with
# (override e.g. TORCH_SPEC="torch torchvision" to take the newest release).
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1

.PHONY: demo test lint bench clean

# What the demo runs: torch, the package and the workflow's tools.
$(VENV)/.installed: pyproject.toml Makefile
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "ddlstm needs Python >= 3.11 (snakemake 8 does); $(PYTHON) is Python " + sys.version.split()[0] + ": run make with PYTHON=python3.11 (or newer)")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH_SPEC)
	$(PY) -m pip install --quiet -e ".[workflow]"
	touch $@

# And what developing needs: the tests, the linters and the documentation site.
$(VENV)/.installed-dev: $(VENV)/.installed
	$(PY) -m pip install --quiet -e ".[test,workflow,lint,docs]"
	touch $@

# The workflow's rules call `python`: the environment's, first on PATH.
RUN := PATH="$(abspath $(VENV))/bin:$$PATH"

# The demo's exported model (config/config.yaml, exports) and a test video of its split.
DEMO_MODEL := results/models/synsalads+syncooking/split1/joint-ddlstm-L3.ddlstm
DEMO_VIDEO := resources/synthetic/syncooking/videos/s01-d01-cam-002.mp4

demo: $(VENV)/.installed  ## install, run the default workflow end to end and its HTML report, then use the exported model
	$(RUN) snakemake --cores all
	$(RUN) snakemake --report results/report.html
	$(RUN) ddlstm predict --model $(DEMO_MODEL) --dataset syncooking $(DEMO_VIDEO) --output results/predict
	$(RUN) ddlstm stream --model $(DEMO_MODEL) --dataset syncooking $(DEMO_VIDEO) --output results/predict/stream.tsv

test: $(VENV)/.installed-dev  ## install, then run the test suite
	$(RUN) $(PY) -m pytest -q

lint: $(VENV)/.installed-dev  ## ruff on the Python code, snakefmt on the workflow (both gate CI)
	$(RUN) ruff check pipeline tests benchmarks studies setup.py
	$(RUN) snakefmt --check Snakefile workflow

bench: $(VENV)/.installed  ## speed: recurrent models vs nn.LSTM, decoding vs ffmpeg, extraction vs the raw forward
	$(PY) benchmarks/recurrent.py
	$(PY) benchmarks/decode.py
	$(PY) benchmarks/extract.py
	$(PY) benchmarks/evaluate.py
	$(PY) benchmarks/stream.py
	$(PY) benchmarks/cnn.py --device cpu --threads 1

clean:
	rm -rf $(VENV) .pytest_cache
