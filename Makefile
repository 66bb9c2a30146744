# 两条命令 / the two quick-start commands:  make demo   ·   make test
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
STAMP_ALL := $(VENV)/.installed-all

.PHONY: demo test test-fast bench setup clean

$(STAMP): pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip>=24"
	$(BIN)/python -m pip install -q -c constraints.txt -e .
	touch $(STAMP)

# tests also need pytest, hypothesis and PySpark (Spark runs the same SQL as DuckDB)
$(STAMP_ALL): $(STAMP)
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[test,spark,postgres]'
	touch $(STAMP_ALL)

setup: $(STAMP_ALL)

demo: $(STAMP)
	$(BIN)/yibao demo

test: $(STAMP_ALL)
	$(BIN)/pytest

# while editing, under a minute on 2 cores: no PostgreSQL, Spark, browser or slow tests, at most 10 examples per
# property test, one pytest-xdist worker per core, bytecode cached between runs (CI runs `make test`, all of it)
test-fast: $(STAMP_ALL)
	PYTHONDONTWRITEBYTECODE= HYPOTHESIS_PROFILE=fast YIBAO_PROPERTY_SCALE=0.1 $(BIN)/pytest -n auto \
	  -m "not postgres and not spark and not slow and not browser" -p no:cacheprovider

bench: $(STAMP)
	$(BIN)/yibao bench scalar

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
