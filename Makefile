# Two commands on a fresh machine (each creates .venv and installs what it needs):
#   make demo   - the main job on the embedded tiny set (offline, CPU, minutes)
#   make test   - the whole test suite, notebooks included
#   make test-fast - everyday work: the tests not marked slow (no notebooks), under two minutes
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test test-fast install clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/colorlib demo --out demo_out --overwrite

test: $(STAMP)
	$(PY) -m pytest

test-fast: $(STAMP)
	$(PY) -m pytest tests -m "not slow"

clean:
	rm -rf $(VENV) demo_out
