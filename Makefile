# The two README commands: `make test` and `make demo`. Each creates .venv
# with the pinned dependencies (requirements.lock) when it is missing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYTHONUNBUFFERED := 1

.PHONY: venv test demo clean

$(STAMP): requirements.lock setup.cfg
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -n 2 --durations=15 tests

demo: $(STAMP)
	$(PY) examples/racecar_mi.py --preset=demo --out=runs/demo

clean:
	rm -rf $(VENV) runs .pytest_cache
