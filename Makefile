# kofukin — two entry points for a fresh machine (Debian-like, Python 3.11, no conda):
#   make book   build the whole book from the bundled data (synthetic panel unless real workbooks are in data/raw/)
#   make test   run every test
# Everything else here is a step of those two.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
JOBS   ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: book test venv demo-data ingest reports site pdf serve toc export bench lint lock clean

book: $(STAMP)
	$(BIN)/kofukin build --jobs $(JOBS)

test: $(STAMP)
	$(BIN)/python -m pytest

venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	# pip compiles every package it installs except an editable one; where PYTHONDONTWRITEBYTECODE is set, each
	# process (every report kernel) would compile src/ again: ~0.15 s of a cold `kofukin report`.
	$(BIN)/python -m compileall -q src/kofukin
	touch $(STAMP)

demo-data: $(STAMP)
	$(BIN)/kofukin demo-data

ingest: $(STAMP)
	$(BIN)/kofukin ingest

reports: $(STAMP)
	$(BIN)/kofukin reports --all --jobs $(JOBS)

site: $(STAMP)
	$(BIN)/kofukin site --jobs $(JOBS)

pdf: $(STAMP)
	$(BIN)/kofukin site --jobs $(JOBS) --pdf

serve: $(STAMP)
	$(BIN)/python -m kofukin.site serve

toc: $(STAMP)
	$(BIN)/python -m kofukin.site toc

export: $(STAMP)
	$(BIN)/kofukin export

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

lock: $(STAMP)
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^kofukin' > requirements.lock.new
	mv requirements.lock.new requirements.lock

clean:
	rm -rf _build data/processed data/exports data/raw/demo book/_generated book/municipalities book/prefectures
