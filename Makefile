# `make run`: create .venv if missing and run the default job.
# `make test`: create .venv if missing, check the layers (lint-imports) and run the test suite.
# `make test-cluster`: the cluster paths: a two-node Ray whose worker cannot read the driver's folders, Ray Data (~4 min).
# `make constraints`: rewrite constraints.txt from .venv (run it after `make test` passes: the versions it passed with).
# Installs take every version from constraints.txt, so a cluster's nodes can match the driver.
PYTHON ?= python3.11
VENV := .venv
STAMP := $(VENV)/.installed-stamp
export RAY_AUTH_MODE ?= disabled

.PHONY: run test test-cluster constraints

$(STAMP): pyproject.toml constraints.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -c "import torch" 2>/dev/null || $(VENV)/bin/python -m pip install -q torch==2.13.0
	$(VENV)/bin/python -m pip install -q -c constraints.txt -e '.[dev]'
	command -v chromium >/dev/null 2>&1 || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
		|| echo "Chromium could not be installed: PNG export and the browser test will be skipped"
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/tru run --resume

test: $(STAMP)
	$(VENV)/bin/lint-imports
	$(VENV)/bin/python -m pytest

test-cluster: $(STAMP)
	$(VENV)/bin/python -m pytest -m cluster

constraints: $(STAMP)
	{ echo "# The versions the test suite passed with (make constraints); make installs from it."; \
	  echo "# Local labels (+cpu) are dropped, so a GPU machine takes the same release's CUDA build."; \
	  $(VENV)/bin/python -m pip freeze --exclude-editable | grep '==' | sed 's/+[^ ]*$$//'; } > constraints.txt
