# The two commands of the README: `make demo` and `make test`.
# Both create .venv if needed and install the tested stack (constraints.txt) first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_CFG ?= configs/demo.yaml
# `make test` runs the fast suite; `make test SLOW=1` (what CI runs) runs every test.
SLOW ?=
PYTEST_MARK := $(if $(SLOW),,-m "not slow")

.PHONY: demo test install clean

install: $(STAMP)

$(STAMP): setup.cfg constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[tf,dev,kaggle]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/birdtpu fit --cfg $(DEMO_CFG)
	$(VENV)/bin/birdtpu predict --cfg $(DEMO_CFG)
	@echo "demo outputs: runs/demo (model, history, metrics) and runs/demo/submission.csv"

test: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_MARK) $(PYTEST_ARGS)

clean:
	rm -rf runs demo_data .pytest_cache
