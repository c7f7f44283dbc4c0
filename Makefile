# alloy-migration: one command to set up, one to test. See README.md.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(CURDIR)/lab/bin:$(CURDIR)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PYTHONPATH := $(CURDIR)
export LAB_RUN_DIR ?= $(CURDIR)/.lab

.PHONY: setup demo system-packages test test-serial test-faults lane-tests lane-molecule-a lane-molecule-b free-lab-ports \
	bench bench-rollout bench-pipeline \
	lint pytest molecule notebook lab-up lab-down lab-status constraints clean

setup: $(VENV)/.installed system-packages ## Create .venv (pinned) and install the Debian packages the lab needs

$(VENV)/.installed: requirements.txt constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt -c constraints.txt
	touch $@

system-packages: ## Debian's prometheus (real Prometheus for the lab) and iproute2 (test lanes); only where missing
	@missing=""; \
	command -v prometheus >/dev/null 2>&1 || missing="$$missing prometheus"; \
	command -v ip >/dev/null 2>&1 || missing="$$missing iproute2"; \
	[ -z "$$missing" ] || { \
	  echo "installing Debian package(s):$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; }

test: setup lint ## Lint, then pytest + the notebook and the molecule scenarios, side by side
	@if scripts/in-netns true 2>/dev/null; then \
	  $(MAKE) --no-print-directory -j3 lane-tests lane-molecule-a lane-molecule-b \
	    || { $(BIN)/python scripts/failure_digest.py $(LANE_LOGS); exit 1; }; \
	else \
	  echo "no network namespaces here: running the suites one after the other"; \
	  $(MAKE) --no-print-directory test-serial; \
	fi

test-serial: free-lab-ports pytest notebook molecule

# Each lane runs with a loopback network of its own (scripts/in-netns), since every lab binds the same
# fixed loopback addresses and ports; the lanes' labs keep their state apart under .lab/lanes/.
MOLECULE_LANE_A ?= default talos_rollout collectors decommission
MOLECULE_LANE_B ?= lab talos_fault baseline rollback
# A lane's output goes to its log, printed whole when the lane ends (lanes do not interleave); when
# one fails, scripts/failure_digest.py prints what failed last, where a CI log's tail shows it.
LANE_LOGS = $(CURDIR)/.lab/lanes/lane-tests.log $(CURDIR)/.lab/lanes/lane-molecule-a.log \
	$(CURDIR)/.lab/lanes/lane-molecule-b.log
lane = @start=$$(date +%s); log=$(CURDIR)/.lab/lanes/$@.log; mkdir -p $(CURDIR)/.lab/lanes; \
	LAB_RUN_DIR=$(CURDIR)/.lab/lanes/$@ scripts/in-netns $(MAKE) --no-print-directory $(1) >$$log 2>&1; \
	rc=$$?; verdict=$$( [ $$rc = 0 ] && echo passed || echo "FAILED (exit $$rc)" ); \
	echo "$@ $$verdict in $$(( $$(date +%s) - start )) s" >>$$log; cat $$log; exit $$rc

lane-tests:
	$(call lane,pytest notebook)

lane-molecule-a:
	$(call lane,molecule SCENARIOS="$(MOLECULE_LANE_A)")

lane-molecule-b:
	$(call lane,molecule SCENARIOS="$(MOLECULE_LANE_B)")

# The tests start labs of their own on the lab's fixed loopback addresses and ports.
free-lab-ports:
	@$(BIN)/python -m lab down | sed 's/^/before tests: /'

lint: setup
	$(BIN)/yamllint -s .
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/ansible-lint

pytest: setup
	$(BIN)/pytest -q --durations=20

# SCENARIOS="a b" runs those molecule scenarios in that order; empty runs every scenario.
SCENARIOS ?=
molecule: setup
	cd $(CURDIR) && if [ -n "$(SCENARIOS)" ]; then \
	  for scenario in $(SCENARIOS); do $(BIN)/molecule test -s $$scenario || exit 1; done; \
	else $(BIN)/molecule test --all; fi

demo: setup ## The README's main command: the whole migration on a fresh lab, then the before/after table
	$(BIN)/python scripts/demo.py

notebook: setup ## Execute the guided rollout notebook headless against the lab (every go-ahead given)
	$(BIN)/python scripts/run_notebook.py

test-faults: setup ## Every fault case, each on a fresh lab, then the table fault | expected | seen | data lost
	$(BIN)/python scripts/fault_suite.py

bench: setup ## One table: rollout overhead at 14 nodes and at scale, no-op re-run, validation, pipeline figures
	$(BIN)/python bench/bench.py

# The lab's nodes reboot in 4 s so that tests run fast; a real Talos node takes tens of seconds (VM) to
# minutes (bare metal) to stop its services, reboot and report Ready. The rollout benchmark measures the
# toolkit's overhead against a reboot of 45 s by default (REBOOT_SECONDS=4 for the lab's own); it prints
# the overhead per batch too, which gives the ratio at any other reboot time.
REBOOT_SECONDS ?= 45

bench-rollout: setup ## Time the rolling Talos phase against the lab's floor and a naive shell loop (REBOOT_SECONDS=45)
	$(BIN)/python bench/rollout_bench.py --reboot-seconds $(REBOOT_SECONDS)

bench-pipeline: setup ## Legacy vs new pipeline figures from the lab Mimir (needs a migrated lab: make demo)
	$(BIN)/python bench/pipeline_bench.py

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
