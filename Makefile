# The two commands the README promises: `make test` and (later) `make lab`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: test venv schema clean

$(VENV)/.installed: pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c requirements.lock -e '.[test]'
	touch $@

venv: $(VENV)/.installed

## Run the whole test suite (tests needing root, QEMU or podman skip with a reason without them).
test: venv
	$(PY) -m pytest $(PYTEST_ARGS)

## Regenerate cluster.schema.json from the model.
schema: venv
	$(VENV)/bin/bootstrap-node schema > cluster.schema.json

clean:
	rm -rf $(VENV) .pytest_cache
