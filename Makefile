# The set-up commands of the README:
#   make demo       install into .venv, then run the smoke-scale demo through every rule (minutes)
#   make demo-full  the science-scale demo (config/demo-full.yaml; the README's model tables)
#   make demo-apply after make demo: a second demo cohort through every frozen model (apply)
#   make test       install into .venv, then lint and run the test suite (what CI runs)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= 2
# jobs call `python`: make it the venv's, as in an activated environment
export PATH := $(abspath $(BIN)):$(PATH)

.PHONY: install demo demo-full demo-apply test lint pytest clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

# the stage table counts the jobs of this invocation only (benchmark files written since it began)
demo: install
	start=$$(date +%s); $(BIN)/snakemake --cores $(CORES) && \
	$(BIN)/python scripts/stage_times.py --since $$start

# a second demo cohort (another seed: other patients) through the frozen models of `make demo`
demo-apply: install
	$(BIN)/python scripts/make_demo_cohort.py --out resources/demo_second --seed 9 --patients 8
	start=$$(date +%s); $(BIN)/snakemake --cores $(CORES) apply \
	  --config apply_cohort=resources/demo_second apply_name=demo_second && \
	$(BIN)/python scripts/stage_times.py --since $$start

demo-full: install
	start=$$(date +%s); $(BIN)/snakemake --cores $(CORES) --configfile config/demo-full.yaml && \
	$(BIN)/python scripts/stage_times.py --since $$start

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/snakefmt --check Snakefile rules
	$(BIN)/snakemake --lint --cores 1

pytest: install
	# exit code 5 (no tests collected) is a failure, not a pass
	$(BIN)/pytest -q; rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$rc

test: lint pytest

clean:
	rm -rf results logs resources/demo .snakemake
