# Two entry points: `make demo` (the main job: rf-export --model rf_b1 --fp16 --target orin) and
# `make test` (the whole suite).
# Each creates the virtual environment on first use: torch 2.13.0 first (pip would otherwise pull
# a CUDA build of several GB), then this project.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.rftrt-installed

.PHONY: demo test venv clean

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt torch==2.13.0
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/rf-export --model rf_b1 --fp16 --target orin --force

test: $(STAMP)
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) build *.egg-info
