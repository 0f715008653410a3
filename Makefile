# Benchmarks print ratios against a baseline measured in the same run. `make bench-quick` for a smoke run.
PY ?= python
BENCH_OUT ?= bench-results

.PHONY: bench bench-quick test lint

bench:
	mkdir -p $(BENCH_OUT)
	$(PY) bench/ingest.py --json $(BENCH_OUT)/ingest.json
	$(PY) bench/image_storage.py --json $(BENCH_OUT)/image_storage.json
	@for b in image_ops text_ops build smote mixing stream train_loop service; do \
	  if [ -f bench/$$b.py ]; then $(PY) bench/$$b.py --json $(BENCH_OUT)/$$b.json || exit 1; fi; done

bench-quick:
	$(PY) bench/ingest.py --quick
	$(PY) bench/image_storage.py --quick
	@for b in image_ops text_ops build smote mixing stream train_loop service; do \
	  if [ -f bench/$$b.py ]; then $(PY) bench/$$b.py --quick || exit 1; fi; done

test:
	$(PY) -m pytest -q

lint:
	ruff check . && ruff format --check .
