# crmkit — every entry point a newcomer or CI needs.  `make demo`, `make test`.
VENV   ?= .venv
PYTHON ?= python3
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed
DEMO    = build/demo
# the project's own packages: an editable install leaves them uncompiled, and where
# PYTHONDONTWRITEBYTECODE is set (as in CI sandboxes) every crmkit process would compile
# them anew (~0.1 s a start); compileall writes what is stale, in well under a second
FEATURES = migrate validate dedupe loadtest api training rollout
PACKAGES = crmkit $(FEATURES)
# mypy finds modules by their folders: it sees crmkit.migrate through a tree of links
TYPES   = build/typecheck
BYTECODE = $(PY) -m compileall -q $(PACKAGES)

.PHONY: demo test check bench clean install

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# Reinstall whenever pyproject.toml or the lock changes.  constraints.txt pins every package
# to the versions the suite last passed with (refresh: pip freeze --exclude-editable).
$(STAMP): pyproject.toml constraints.txt | $(PY)
	$(PY) -m pip install -q -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

## make demo: install, migrate the example legacy estate into SQLite, print the summary and the report's path
demo: $(STAMP)
	@$(BYTECODE)
	rm -rf $(DEMO) && mkdir -p $(DEMO)
	$(VENV)/bin/crmkit migrate run migrate/mappings/acme-legacy.yaml \
		--target sqlite:///$(DEMO)/crm.db --report $(DEMO)/report
	@echo "Open $(DEMO)/report/report.html in a browser; the CRM database is $(DEMO)/crm.db"

## make test: install with the test extras and run the whole suite
test: $(STAMP)
	@$(BYTECODE)
	$(VENV)/bin/pytest

## make check: types (mypy), lint and format (ruff), and the import contract (layers point down)
check: $(STAMP)
	@$(PY) bench/linktree.py . $(TYPES) >/dev/null
	cd $(TYPES) && $(CURDIR)/$(VENV)/bin/mypy --config-file $(CURDIR)/pyproject.toml -p crmkit
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/pytest -q -n 0 -p no:cacheprovider tests/unit/test_layers.py

## make bench: the benchmarks in bench/ (not part of the test suite)
bench: $(STAMP)
	$(PY) -m pip install -q -e '.[bench]'
	@$(BYTECODE)
	$(PY) bench/run.py

clean:
	rm -rf build .pytest_cache .mypy_cache
