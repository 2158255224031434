#!/bin/sh
# For scripts/cuda/device.sh until it calls the harness itself: the build step
# is 'python3 scripts/harness build' (scripts/harness/build.py).
exec python3 "$(dirname "$0")/harness" build "$@"
