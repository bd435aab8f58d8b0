# The README's two commands: `make run` and `make test`. Both set up everything they need.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
APT_PACKAGES := libsystemd-dev pkg-config rustc cargo libstd-rust-dev-wasm32 systemd \
	prometheus systemd-container debootstrap dpkg-dev fakeroot python3-venv python3-dev gcc \
	lintian curl rsyslog openssl clang lld librust-serde-json-dev docker-registry apache2-utils
SAMPLE := examples/sample-plugin
SAMPLE_WASM := $(SAMPLE)/target/wasm32-unknown-unknown/release/forgeone_sample_plugin.wasm
DEV_KEYS := dev-keys
PYTEST_ARGS ?=

.PHONY: setup system-deps venv plugins run test lint typecheck pytest deb clean

setup: system-deps venv

# System packages: installed through apt when root, otherwise the exact command is printed.
system-deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing system packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else \
	    echo "missing system packages; run: sudo apt-get install -y$$missing"; exit 1; \
	  fi; \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

# The signed Rust sample plugin in plugins.d/ (key pair in dev-keys/, trusted by the dev config).
plugins: setup
	cd $(SAMPLE) && RUSTC=/usr/bin/rustc /usr/bin/cargo build --offline --release --target wasm32-unknown-unknown -q
	$(BIN)/python -m forgeoned.cli.devtools sample --wasm $(SAMPLE_WASM) --keys $(DEV_KEYS) --out plugins.d

run: plugins
	TZ=$${TZ:-UTC} $(BIN)/forgeoned --config etc/forgeoned.dev.toml

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy

pytest: plugins
	$(BIN)/pytest $(PYTEST_ARGS); rc=$$?; if [ $$rc = 5 ]; then echo "pytest ran no tests"; exit 1; fi; exit $$rc

test: setup lint typecheck pytest

deb: setup
	$(MAKE) -C packaging deb

clean:
	rm -rf $(VENV) build dist *.egg-info $(SAMPLE)/target
