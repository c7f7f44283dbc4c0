# alloy-migration: one command to set up, one to test. See README.md.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(CURDIR)/lab/bin:$(CURDIR)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PYTHONPATH := $(CURDIR)
export LAB_RUN_DIR ?= $(CURDIR)/.lab

.PHONY: setup system-packages test free-lab-ports bench-rollout lint pytest molecule lab-up lab-down lab-status constraints clean

setup: $(VENV)/.installed system-packages ## Create .venv (pinned) and install the Debian packages the lab needs

$(VENV)/.installed: requirements.txt constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt -c constraints.txt
	touch $@

system-packages: ## Debian's prometheus (real Prometheus for the lab); installed only where missing
	@command -v prometheus >/dev/null 2>&1 || { \
	  echo "installing Debian package prometheus"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }

test: setup lint free-lab-ports pytest molecule ## Lint, then pytest, then every molecule scenario

# The tests start labs of their own on the lab's fixed loopback addresses and ports.
free-lab-ports:
	@$(BIN)/python -m lab down | sed 's/^/before tests: /'

lint: setup
	$(BIN)/yamllint -s .
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/ansible-lint

pytest: setup
	$(BIN)/pytest -q

molecule: setup
	cd $(CURDIR) && $(BIN)/molecule test --all

bench-rollout: setup ## Time the rolling Talos phase against the lab's floor and a naive shell loop
	$(BIN)/python bench/rollout_bench.py

lab-up: setup ## Start the rehearsal cluster in the background (state in .lab/)
	$(BIN)/python -m lab up

lab-down: ## Stop the rehearsal cluster and everything it started
	@[ -x $(BIN)/python ] && $(BIN)/python -m lab down || true

lab-status:
	$(BIN)/python -m lab status

constraints: ## Re-pin every transitive dependency after changing requirements.txt
	$(BIN)/pip freeze | grep -v '^-e' | sort -f > constraints.txt

clean: lab-down
	rm -rf $(VENV) .lab .pytest_cache .ruff_cache
