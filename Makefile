# 两条命令 / the two quick-start commands:  make demo   ·   make test
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench setup clean

$(STAMP): pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip>=24"
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/yibao demo

test: $(STAMP)
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/yibao bench scalar

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
