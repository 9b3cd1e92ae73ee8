# hatd: `make run` starts a HAT, `make test` proves it. Both set up .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install browser run test bench fuzz lint format settings-doc clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/hatd serve

# Debian's Chromium for the browser tests; without it they are skipped, loudly.
browser:
	@bash tests/install-chromium.sh

# The suite in parallel, one worker per core (TEST_WORKERS=0: in this process), each worker with
# its own embedded PostgreSQL. Bytecode is written even where PYTHONDONTWRITEBYTECODE is set, or
# every worker and every `hatd` command a test starts compiles every module again.
TEST_WORKERS ?= auto
test: install browser
	env -u PYTHONDONTWRITEBYTECODE $(BIN)/pytest -n $(TEST_WORKERS) --dist worksteal

bench: install
	$(BIN)/python bench/bench_tokens.py
	$(BIN)/python bench/bench_login.py
	$(BIN)/python bench/bench_raw.py
	$(BIN)/python bench/bench_growth.py
	$(BIN)/python bench/bench_context.py
	$(BIN)/python bench/bench_debits.py
	$(BIN)/python bench/bench_export.py
	$(BIN)/python bench/bench_plugs.py
	$(BIN)/python bench/bench_plug_memory.py
	$(BIN)/python bench/bench_backup.py
	$(BIN)/python bench/bench_pages.py

# Schemathesis against a HAT it starts itself, for FUZZ_SECONDS (300); not part of `make test`.
fuzz: install
	$(BIN)/python fuzz/run.py

lint: install
	$(BIN)/ruff check hatd tests bench fuzz
	$(BIN)/ruff format --check hatd tests bench fuzz
	$(BIN)/mypy hatd
	$(BIN)/lint-imports

format: install
	$(BIN)/ruff check --fix hatd tests bench fuzz
	$(BIN)/ruff format hatd tests bench fuzz

# The README's table of settings, made again from config/default.toml (the one place they are written).
settings-doc: install
	$(BIN)/python -c 'from pathlib import Path; from hatd.settings import with_readme_table as w; p = Path("README.md"); p.write_text(w(p.read_text()))'

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
