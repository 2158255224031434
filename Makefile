# TurboQuant for MLX: the steps. The work lives in scripts/.
#   make            dependencies, submodule, series, build, .venv (all a new user needs)
#   make test       this project's tests and upstream's Python suite, on the CPU
#   make apply      reset mlx/ to the pinned base and apply patches/series
#   make export     rewrite patches/ from the commits on mlx/
#   make check      lint the series (applies, messages, whitespace, formatting,
#                   codebooks) and type-check its Metal code (make check-metal)
#   make check-bisect   build the series patch by patch (slow)
#   make wheel      a patched mlx wheel in dist/
#   make bench-speed, bench-quality, bench-model   benchmarks, in results/
#   make clean      remove build outputs (keeps .venv and the series in mlx/)
# MLX_CUDA=1 builds the CUDA backend too.

SHELL := /bin/bash
S := scripts

.PHONY: all deps submodule apply build wheel test export check check-metal \
	check-bisect \
	bench-speed bench-quality bench-model clean

all: deps
	$(S)/apply.sh --if-needed
	$(S)/build.sh

deps:
	$(S)/deps.sh

submodule:
	$(S)/submodule.sh

apply:
	$(S)/apply.sh

build:
	$(S)/build.sh

wheel: all
	$(S)/wheel.sh

test: all
	$(S)/test.sh

.PHONY: test-metal
test-metal: all
	.venv/bin/python -m pytest -q python_tests/test_metal_run.py

export:
	$(S)/export.sh

check: deps check-metal
	$(S)/check.sh

check-metal: deps
	$(S)/metal/check_metal.py

check-bisect: deps
	$(S)/check_bisect.sh

bench-speed: all
	.venv/bin/python $(S)/bench_speed.py

bench-quality: all
	.venv/bin/python $(S)/bench_quality.py

bench-model: all
	.venv/bin/python $(S)/bench_model.py

clean:
	rm -rf build dist
	[ ! -e mlx/.git ] || git -C mlx clean -q -fdX python/mlx
