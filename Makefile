# The commands people type. Quickstart: `make demo`, then `make test`.
VENV ?= .venv
BIN := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)
# torch/torchvision pinned to the builds the project is tested with
TORCH := torch==2.14.1 torchvision==0.29.1
PYTEST_ARGS ?=

.PHONY: env demo ablations test test-slurm-current lint format dvc slurm-up slurm-down slurm-current-up \
	slurm-current-down bench clean

env: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -d $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

## demo: the whole pipeline on the embedded synthetic dataset (CPU, minutes)
demo: env
	snakemake --workflow-profile workflow/profiles/default
	@echo
	@echo "report: $(CURDIR)/results/report.md  (tables: results/tables, figures: results/figures)"

## ablations: Tables 4 and 5 and Figure 4 on the synthetic set, 3 seeds each (about an hour on
## 2 cores), in a folder of their own so the demo's results stay
ABLATIONS ?= ablations
ablations: env
	mkdir -p $(ABLATIONS)/config
	cp config/config.yaml config/ablations.yaml $(ABLATIONS)/config/
	snakemake --workflow-profile workflow/profiles/default --directory $(ABLATIONS) \
	  --configfile $(abspath $(ABLATIONS))/config/ablations.yaml
	@echo
	@echo "report: $(abspath $(ABLATIONS))/results/report.md"

## test: lint, then the whole test suite (includes the demo end to end and the Slurm tests)
test: env lint
	@set +e; $(BIN)/pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing" >&2; exit 1; fi; exit $$rc

## test-slurm-current: the Slurm tests again, against Slurm 24.11 (a Debian 13 chroot, root)
SLURM_CURRENT_BASE ?= /tmp/sstl-slurm-current
test-slurm-current: env slurm-current-up
	PATH=$(SLURM_CURRENT_BASE)/bin:$$PATH SLURM_BASE=$(SLURM_CURRENT_BASE) \
	  $(BIN)/pytest -m slurm $(PYTEST_ARGS)

lint: env
	ruff check sstl tests bench hubconf.py
	ruff format --check sstl tests bench hubconf.py
	snakefmt --check Snakefile workflow/rules
	snakemake --lint --workflow-profile workflow/profiles/default >/dev/null
	sstl dvc generate --check

format: env
	ruff format sstl tests bench hubconf.py
	ruff check --fix sstl tests bench hubconf.py
	snakefmt Snakefile workflow/rules

## dvc: regenerate dvc.yaml from the Snakemake workflow
dvc: env
	sstl dvc generate

slurm-up:
	bash .ci/slurm-up.sh

slurm-down:
	bash .ci/slurm-down.sh

slurm-current-up: env
	PYTHON=$(BIN)/python SLURM_CURRENT_BASE=$(SLURM_CURRENT_BASE) bash .ci/slurm-current-up.sh

slurm-current-down:
	SLURM_CURRENT_BASE=$(SLURM_CURRENT_BASE) bash .ci/slurm-current-down.sh

bench: env
	python bench/loader.py
	python bench/augment.py
	python bench/train_step.py
	python bench/retrieval.py

clean:
	rm -rf data runs state results logs benchmarks .snakemake dvc_plots report.zip
