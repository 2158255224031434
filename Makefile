# TurboQuant for MLX: the steps. The work lives in scripts/harness/, one
# module per step ('python3 scripts/harness -h' lists them).
#   make            dependencies, submodule, series, build, .venv (all a new user needs)
#   make test       this project's tests, upstream's Python suite and the mlx-lm
#                   series' tests, on the CPU (and on the GPU on a Mac)
#   make apply      reset mlx/ and mlx-lm/ to their pinned bases and apply
#                   patches/mlx/series and patches/mlx-lm/series
#   make export     rewrite patches/<name>/ from the commits on each submodule
#                   (PATCH_AUTHOR='Name <email>' sets the patches' author)
#   make check      lint the series (applies, messages, whitespace, formatting,
#                   codebooks) and type-check its Metal code (make check-metal)
#   make check-bisect   build the series patch by patch (slow)
#   make check-upstream the base and the MLX series on upstream's newest main
#   make wheel      patched mlx and mlx-lm wheels in dist/
#   make bench-speed, bench-quality, bench-model   benchmarks, in results/
#   make clean      remove build outputs (keeps .venv and the series in mlx/)
# MLX_CUDA=1 builds the CUDA backend too.

H := python3 scripts/harness
S := scripts

.PHONY: all deps submodule apply build wheel test export check check-metal \
	check-bisect check-upstream \
	bench-speed bench-quality bench-model clean

all: deps
	$(H) apply --if-needed
	$(H) build

deps:
	$(H) deps

submodule:
	$(H) submodule

apply:
	$(H) apply

build:
	$(H) build

wheel: all
	$(H) wheel

test: all
	$(H) test

.PHONY: test-metal test-cuda-run
test-metal: all
	.venv/bin/python -m pytest -q python_tests/test_metal_run.py

test-cuda-run: all
	.venv/bin/python -m pytest -q python_tests/test_cuda_run.py

export:
	$(H) export

check: deps check-metal
	$(H) check

check-metal: deps
	$(S)/metal/check_metal.py

check-bisect: deps
	$(H) check-bisect

check-upstream:
	$(H) check-upstream

bench-speed: all
	.venv/bin/python $(S)/bench_speed.py

bench-quality: all
	.venv/bin/python $(S)/bench_quality.py

bench-model: all
	.venv/bin/python $(S)/bench_model.py

clean:
	$(H) clean
