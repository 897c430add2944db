# The two commands of the README: `make run` and `make test`; `make fuzz` runs the fuzzers.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA_DIR ?= var
CONFIG_DIR ?= conf

.PHONY: run test bench fuzz clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Stamp files so a second `make` does not reinstall; setup.cfg changes do.
$(VENV)/.installed: setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@ $(VENV)/.installed

$(VENV)/.installed-fuzz: setup.cfg pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[fuzz]'
	touch $@ $(VENV)/.installed

# Every listener on loopback, on ports a user without root may bind.
RUN_LISTEN ?= --set imap_listen=127.0.0.1:1143 --set pop3_listen=127.0.0.1:1110 \
	--set ical_listen=127.0.0.1:8080 --set managesieve_listen=127.0.0.1:4190

run: $(VENV)/.installed
	$(BIN)/groupware serve --demo --config-dir $(CONFIG_DIR) --data-dir $(DATA_DIR) $(RUN_LISTEN)

# Test modules run side by side in TEST_WORKERS processes (pytest-xdist): most tests wait on
# servers and clients rather than on a core. A module stays in one process, so its
# module-scoped servers start once; the longest modules go first (tests/conftest.py).
TEST_WORKERS ?= 4

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

bench: $(VENV)/.installed-test
	$(BIN)/python bench/store.py

# Each harness in turn for FUZZ_SECONDS (or FUZZ_RUNS inputs), seeded from real data.
# New corpus entries stay in $(FUZZ_DIR)/corpus, crashes, hangs and memory blow-ups
# in $(FUZZ_DIR)/findings/<harness>/; none of it is committed.
FUZZ_SECONDS ?= 60
FUZZ_RUNS ?= -1
FUZZ_DIR ?= .fuzz
FUZZ_HARNESSES ?= imap_commands pop3_commands lmtp_session managesieve_commands mime_message \
	icalendar_columns soap_codec dav_bodies sieve_scripts client_setup vcard_columns
FUZZ_MAX_LEN ?= 4096
FUZZ_OPTIONS ?= -timeout=10 -rss_limit_mb=1024 -max_len=$(FUZZ_MAX_LEN) -print_final_stats=1

fuzz: $(VENV)/.installed-fuzz
	$(BIN)/python -m fuzz.seeds $(FUZZ_DIR)/seeds $(FUZZ_HARNESSES)
	failed=; for harness in $(FUZZ_HARNESSES); do \
		mkdir -p $(FUZZ_DIR)/corpus/$$harness $(FUZZ_DIR)/findings/$$harness; \
		$(BIN)/python -m fuzz.$$harness $(FUZZ_OPTIONS) -max_total_time=$(FUZZ_SECONDS) -runs=$(FUZZ_RUNS) \
			-artifact_prefix=$(FUZZ_DIR)/findings/$$harness/ $(FUZZ_DIR)/corpus/$$harness $(FUZZ_DIR)/seeds/$$harness \
			|| failed="$$failed $$harness"; \
	done; \
	if [ -n "$$failed" ]; then echo "findings from:$$failed (see $(FUZZ_DIR)/findings)"; exit 1; fi

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
