# Two commands set everything up: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-test

.PHONY: demo test fuzz bench registry-deps venv compile clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -U pip

# Installs mfkit with the test and notebook extras; redone when pyproject.toml changes.
$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(PY) -m pip install -q -e '.[test,notebook]'
	touch $(STAMP)

# Byte-compile mfkit (an editable install is not compiled by pip, and PYTHONDONTWRITEBYTECODE
# may be set): halves the start-up time of every mfkit command.
compile: $(STAMP)
	@$(PY) -m compileall -q mfkit

venv: $(STAMP)

# Debian's docker-registry (distribution 2.8.2) for the real-registry tests and the demo.
# Installed with apt when missing and running as root; otherwise those tests skip loudly.
registry-deps:
	@command -v docker-registry >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "installing docker-registry with apt-get"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-registry) >/dev/null 2>&1 \
	      || echo "WARNING: apt-get could not install docker-registry; real-registry tests will be skipped"; \
	  else echo "WARNING: docker-registry missing and not root; real-registry tests will be skipped"; fi; }
	@# skopeo: an independent digest check in the registry tests (skipped quietly when absent)
	@command -v skopeo >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (DEBIAN_FRONTEND=noninteractive apt-get install -y -qq skopeo) >/dev/null 2>&1 \
	      || echo "WARNING: apt-get could not install skopeo; its cross-check will be skipped"; fi; }

demo: compile registry-deps
	$(PY) -m tests.registry.demo

test: compile registry-deps
	$(PY) -m pytest -q

fuzz: $(STAMP)
	$(PY) -m pytest -q -m slow

bench: compile registry-deps
	$(PY) bench/analyze_bench.py
	$(PY) bench/fetch_bench.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
