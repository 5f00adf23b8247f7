# The two README commands: `make test` and `make demo`. Each creates .venv
# with the pinned dependencies (requirements.lock) when it is missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYTHONUNBUFFERED := 1
# The full offline data when it lies beside the clone (our machines and CI);
# without it the tests use the subset in tests/data and the library TFDS.
SHARED_DATA := $(abspath $(CURDIR)/../shared/data)
ifneq ($(wildcard $(SHARED_DATA)/.),)
export KERAS_REVERSIBLE_DATA ?= $(SHARED_DATA)
endif

.PHONY: venv test test-distributed test-applications-all demo studies clean bazel-test

$(STAMP): requirements.lock setup.cfg
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -n 2 -m "not distributed" --durations=15 tests

# Multi-process training tests (2 workers on 127.0.0.1, SIGKILL and resume).
test-distributed: $(STAMP)
	$(PY) -m pytest -n 2 -m distributed --durations=0 tests

# Every keras.applications constructor (40) through the shared harness, each in a fresh
# process, two at a time (one long pytest worker grows past this machine's memory);
# about 30 minutes on 2 cores.
test-applications-all: $(STAMP)
	$(PY) tools/each_application.py

demo: $(STAMP)
	$(PY) examples/racecar_mi.py --preset=demo --out=runs/demo

# The evidence studies of docs/results/ (issue 16), one after another, at nice 10: each
# run is backed up after every epoch, so rerunning continues where a kill or the end of a
# session left it. Many hours on 2 cores; needs the full data (KERAS_REVERSIBLE_DATA).
# The full-data RN study comes before MNIST: its seed-0 runs are the CIFAR presets.
STUDIES := \
  "rn_cifar_resnet.py --preset=lowdata --out=../docs/results/rn_cifar_resnet_5k" \
  "racecar_cifar_resnet.py --preset=cpu --out=../docs/results/racecar_cifar_resnet" \
  "rn_cifar_resnet.py --preset=cpu --out=../docs/results/rn_cifar_resnet_50k" \
  "racecar_mnist.py --preset=fulldata --source=local --out=../docs/results/racecar_mnist_55k" \
  "racecar_cifar_resnet.py --preset=cpu --network=vgg --out=../docs/results/racecar_cifar_vgg"

studies: $(STAMP)
	@test -n "$$KERAS_REVERSIBLE_DATA" || { echo "studies: set KERAS_REVERSIBLE_DATA"; exit 2; }
	cd examples && for study in $(STUDIES); do \
	  echo "== $$study"; nice -n 10 ../$(PY) $$study || exit $$?; done

clean:
	rm -rf $(VENV) runs .pytest_cache

# `bazel test //...` on the top-level BUILD, offline (third_party/bazel_stubs), with
# the .venv interpreter. Installs Debian's bazel-bootstrap when bazel is missing.
# Tests read data from ../shared/data when it exists, as in `make test` (absolute,
# since bazel runs tests elsewhere; override: make bazel-test BAZEL_DATA=/path).
BAZEL      ?= bazel
BAZEL_DATA ?= $(abspath $(wildcard $(CURDIR)/../shared/data))
BAZEL_ARGS ?= //...

bazel-test: $(STAMP)
	@command -v $(BAZEL) >/dev/null 2>&1 || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update && $$SUDO apt-get install -y bazel-bootstrap; }
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(BAZEL) test $(BAZEL_ARGS) \
	  --python_path="$(CURDIR)/$(PY)" \
	  $(if $(BAZEL_DATA),--test_env=KERAS_REVERSIBLE_DATA="$(BAZEL_DATA)") \
	  --test_env=HOME --test_env=TF_CPP_MIN_LOG_LEVEL \
	  --test_output=errors
