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
# Tests run in WORKERS processes (pytest-xdist), a test file to one process so that its module
# fixtures are built once; WORKERS=0 runs them in this process.
WORKERS ?= 2
PYTEST := $(PY) -m pytest -q $(if $(filter 0,$(WORKERS)),,-n $(WORKERS) --dist loadfile)

.PHONY: demo test install clean install-beam test-beam

install: $(STAMP)

$(STAMP): setup.cfg constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[tf,jax,kapre,onnx,openvino,dev,kaggle,birdnet]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/birdtpu fit --cfg $(DEMO_CFG)
	$(VENV)/bin/birdtpu predict --cfg $(DEMO_CFG)
	@echo "demo outputs: runs/demo (model, history, metrics) and runs/demo/submission.csv"

# The whole suite runs under the TensorFlow backend; the tests marked `backends` (layers, models,
# losses, metrics, JAX training) run a second time under JAX, on 2 host CPU devices.
JAX_MARK := $(if $(SLOW),-m backends,-m "backends and not slow")

test: $(STAMP)
	KERAS_BACKEND=tensorflow $(PYTEST) $(PYTEST_MARK) $(PYTEST_ARGS)
	KERAS_BACKEND=jax XLA_FLAGS=--xla_force_host_platform_device_count=2 \
		$(PYTEST) $(JAX_MARK) $(PYTEST_ARGS)

# Apache Beam (`shard --runner beam`) has its own environment and pins (constraints-beam.txt):
# its protobuf and pillow ranges do not reach the tested stack. It holds no TensorFlow, which
# shows the shard builder needs none. CI runs `make test-beam` after `make test SLOW=1`.
BEAM_VENV ?= .venv-beam
BEAM_STAMP := $(BEAM_VENV)/.installed

install-beam: $(BEAM_STAMP)

$(BEAM_STAMP): setup.cfg constraints-beam.txt
	test -x $(BEAM_VENV)/bin/python || $(PYTHON) -m venv $(BEAM_VENV)
	$(BEAM_VENV)/bin/python -m pip install -q --upgrade pip
	$(BEAM_VENV)/bin/python -m pip install -q -c constraints-beam.txt -e '.[beam]' pytest pytest-timeout
	touch $(BEAM_STAMP)

test-beam: $(BEAM_STAMP)
	$(BEAM_VENV)/bin/python -m pytest -q tests/test_beam.py $(PYTEST_ARGS)

clean:
	rm -rf runs demo_data .pytest_cache
