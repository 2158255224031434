# For the shell tools outside the harness (check_metal.sh, cuda/pack.sh) until
# they are converted: the settings of scripts/harness/core.py, their one
# source, as shell variables, and three helpers. Source it; do not run it.
eval "$(python3 "$(dirname "${BASH_SOURCE[0]}")/harness" env)"
die() {
  echo "error: $*" >&2
  exit 1
}
note() { echo "==> $*"; }
mlx_git() { git -C "$MLX" "$@"; }
