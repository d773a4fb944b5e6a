# mailsec: `make run` starts it on the embedded default (SQLite + local files); `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SDK4 := .sdk4
# The data directory: DATA=..., else $MAILSEC_DATA_DIR, else ./var -- the same default the `mailsec` command uses
# when run from here, so `make run` and `.venv/bin/mailsec account create ...` meet the same database.
DATA ?= $(or $(MAILSEC_DATA_DIR),var)
API ?= 127.0.0.1:8025
SMTP ?= 127.0.0.1:2525
SYSTEM_PACKAGES := chromium fonts-noto-cjk dovecot-imapd dovecot-lmtpd libmagic1 postgresql
# the peers the benchmarks measure mailsec against; not needed by the tests
BENCH_PACKAGES := postfix spamassassin spamc spamd
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test lint typecheck system-deps bench-deps deps bench clean fmt model

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

$(SDK4)/.installed: $(STAMP)
	$(BIN)/pip install -q --no-deps --target $(SDK4) 'cloudflare==4.3.*'
	touch $@

deps: $(STAMP)

# Debian packages the tests and the preview need (bench-deps: the benchmarks' peers); installed only when running as
# root and missing. Postfix is preset to "No configuration" and no system service is left running: the benches start
# private instances from their own config.
define install_debs
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages:$$missing"; \
	    echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	    for s in dovecot postgresql postfix spamd spamassassin; do systemctl disable --now $$s >/dev/null 2>&1 || service $$s stop >/dev/null 2>&1 || true; done; \
	  else echo "not root: skipping Debian packages$$missing (what needs them will skip)"; fi; \
	fi
endef

system-deps:
	$(call install_debs,$(SYSTEM_PACKAGES))

bench-deps:
	$(call install_debs,$(BENCH_PACKAGES))

# An account's content model adapts to its analysts' labels only after a check on labelled mail: the shared corpora
# when they are beside the checkout (MAILSEC_LEARN_HOLDOUT_DIR overrides; empty = no adaptation).
run: $(STAMP) system-deps
	MAILSEC_LEARN_HOLDOUT_DIR=$(or $(MAILSEC_LEARN_HOLDOUT_DIR),$(wildcard $(CORPORA))) $(BIN)/mailsec serve --data $(DATA) --api $(API) --smtp $(SMTP)

test: $(STAMP) $(SDK4)/.installed system-deps
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	MAILSEC_SDK4_PATH=$(abspath $(SDK4)) $(BIN)/pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

fmt: $(STAMP)
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP) system-deps bench-deps
	$(BIN)/python bench/search.py

# The shipped content model, rebuilt reproducibly from the dev corpora (sorted inputs, deterministic training).
# phish-other (advance-fee fraud and list phish) trains the phishing class, modern-ham the ham class next to 2002's.
CORPORA ?= ../shared/corpora
model: $(STAMP)
	$(BIN)/mailsec train phishing=$(CORPORA)/phishing_pot phishing=$(CORPORA)/phish-other \
	  spam=$(CORPORA)/spamassassin/spam-1 ham=$(CORPORA)/spamassassin/easy-ham-1 \
	  ham=$(CORPORA)/spamassassin/hard-ham-1 ham=$(CORPORA)/modern-ham -o src/mailsec/scan/data/content_model.npz

clean:
	rm -rf $(VENV) $(SDK4) .pytest_cache .mypy_cache .ruff_cache
