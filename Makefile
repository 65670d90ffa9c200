# Building, testing and documenting brakes. `make help` lists the targets.

PYTHON ?= python3
VENV := .venv
# The build tools live apart from the test environment, pinned.
DIST_VENV := target/dist-venv
DIST := dist
# Linux wheels link against glibc 2.17 (manylinux2014), through zig.
COMPATIBILITY := manylinux2014

.PHONY: help dist wheel sdist check-dist venv test docs docs-serve bench clean

help:
	@echo "make dist        the abi3 wheel ($(COMPATIBILITY), built with zig) and the sdist, into $(DIST)/"
	@echo "make test        the README's test command: cargo test and pytest, in $(VENV)"
	@echo "make docs        the documentation site, built strictly into site/"
	@echo "make docs-serve  the site on http://127.0.0.1:8000, rebuilt on every change"
	@echo "make bench       every benchmark script, after `pip install .[bench]`"
	@echo "make clean       remove $(DIST)/, site/ and the build tools"

$(DIST_VENV)/.installed: scripts/dist-requirements.txt
	$(PYTHON) -m venv $(DIST_VENV)
	$(DIST_VENV)/bin/pip install -q -r scripts/dist-requirements.txt
	touch $@

# maturin runs zig as `python3 -m ziglang`, so the build venv comes first on PATH.
wheel: $(DIST_VENV)/.installed
	mkdir -p $(DIST)
	rm -f $(DIST)/brakes-*.whl
	PATH="$(abspath $(DIST_VENV))/bin:$$PATH" maturin build --release --strip --zig \
		--compatibility $(COMPATIBILITY) --out $(DIST)

sdist: $(DIST_VENV)/.installed
	mkdir -p $(DIST)
	rm -f $(DIST)/brakes-*.tar.gz
	$(DIST_VENV)/bin/maturin sdist --out $(DIST)

# The wheel's symbols must allow the tag it claims (auditwheel reads them).
check-dist:
	$(DIST_VENV)/bin/auditwheel show $(DIST)/brakes-*.whl | tee $(DIST_VENV)/auditwheel.txt
	tr -s ' \n' ' ' < $(DIST_VENV)/auditwheel.txt \
		| grep -q 'consistent with the following platform tag: "manylinux_2_17_x86_64"'

dist: wheel sdist check-dist
	@ls -l $(DIST)

venv:
	$(PYTHON) -m venv $(VENV) && $(VENV)/bin/pip install '.[test]'

test: venv
	cargo test && $(VENV)/bin/python -m pytest

docs:
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

docs-serve:
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve --dev-addr 127.0.0.1:8000

bench:
	for script in benchmarks/bench_*.py; do $(VENV)/bin/python $$script || exit 1; done

clean:
	rm -rf $(DIST) site $(DIST_VENV)
