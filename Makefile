# Conveniences for developers; the README's two commands (./tools/demo, ./tools/test) need no make.
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: demo test bootstrap lint fmt typecheck render docs clean

demo:
	./tools/demo

test:
	./tools/test

bootstrap:
	./tools/bootstrap

lint: bootstrap
	$(VENV)/bin/ruff check wayray tests bench

fmt: bootstrap
	$(VENV)/bin/ruff format wayray tests bench
	$(VENV)/bin/ruff check --fix wayray tests bench

typecheck: bootstrap
	$(PY) -m mypy

clean:
	rm -rf build dist *.egg-info .mypy_cache .ruff_cache .pytest_cache
