.PHONY: setup demo test bench
setup:
	bash scripts/setup.sh
demo: setup
	.venv/bin/forkpoint demo
test: setup
	.venv/bin/python -m pytest -n 2 --timeout 1500
bench: setup
	.venv/bin/forkpoint bench --quick
