# Two entry points (README): `make run` opens the sample project, `make test` runs every test.
# Both create a local .venv and install what they need, system packages included.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test sysdeps-run sysdeps-test venv bench sample

run: sysdeps-run venv
	$(BIN)/raabin-labeler

test: sysdeps-test venv
	$(BIN)/pip install -q -e '.[test]'
	xvfb-run -a -s "-screen 0 1600x1000x24" $(BIN)/python -m pytest -q

# apt is asked only for what is missing, so a machine that has it all is not touched.
sysdeps-run:
	@$(PYTHON) -c "import venv, ensurepip" 2>/dev/null || ($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq python3-venv)
	@$(PYTHON) -c "import tkinter" 2>/dev/null || ($(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq python3-tk)

sysdeps-test: sysdeps-run
	@command -v xvfb-run >/dev/null && command -v xauth >/dev/null || ($(SUDO) apt-get update -qq && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq xvfb xauth)

venv: $(BIN)/raabin-labeler

$(BIN)/raabin-labeler: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	touch $@

sample: venv
	rm -rf sample_data
	$(BIN)/python -m raabin_labeler.sample --out sample_data --seed 7
	$(BIN)/raabin-labeler detect sample_data

bench: venv
	@for script in benchmarks/*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done
