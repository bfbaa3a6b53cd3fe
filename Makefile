# One-command set-up: `make demo` and `make test` create .venv and install everything on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint format bench clean

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first, pinned: the CPU build; anything looser would pull a multi-GB CUDA build.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/system2 demo --out demo
	$(BIN)/system2 planning generate sokoban --size 7 --train 60 --test 10 --seed 0 --workers 2 --out demo/sokoban max_trace_tokens=10000
	$(BIN)/system2 planning show demo/sokoban --split test --index 0 --out demo/sokoban.png
	@echo "Pictures: demo/maze-0.png demo/maze-1.png demo/sokoban.png"

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -n 2 --durations=10

lint: $(STAMP)
	$(BIN)/ruff check .

format: $(STAMP)
	$(BIN)/ruff format .

bench: $(STAMP)
	$(BIN)/python benchmarks/astar.py

clean:
	rm -rf demo .pytest_cache .ruff_cache .hypothesis
