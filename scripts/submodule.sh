#!/usr/bin/env bash
# Check out mlx/ at the pinned base. The base is only reachable through a
# pull-request ref upstream, so fetch that ref when the clone lacks it.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

base=$(pinned_base)
unreachable() {
  cat >&2 <<MSG
error: cannot get MLX's source (commit $base) from $MLX_URL.
Offline, point git at a mirror of ml-explore/mlx that has $BASE_PULL_REF:
    git config --global url.<mirror path or URL>.insteadOf $MLX_URL
    git config --global protocol.file.allow always   # when the mirror is a local path
then run 'make' again.
MSG
  exit 1
}

if [ ! -e "$MLX/.git" ]; then
  note "initializing the mlx submodule"
  # The clone succeeds even when the commit is missing; checking it out may not.
  git -C "$ROOT" submodule update --init mlx 2>"$ROOT/.submodule.log" || true
  [ -e "$MLX/.git" ] || { cat "$ROOT/.submodule.log" >&2; rm -f "$ROOT/.submodule.log"; unreachable; }
  rm -f "$ROOT/.submodule.log"
fi
if ! mlx_git cat-file -e "$base^{commit}" 2>/dev/null; then
  note "fetching $BASE_PULL_REF for the pinned base $base"
  mlx_git fetch -q origin "+$BASE_PULL_REF:$BASE_REF" || unreachable
  mlx_git cat-file -e "$base^{commit}" 2>/dev/null ||
    die "$BASE_PULL_REF of $MLX_URL no longer holds $base"
fi
if [ -z "$(mlx_git rev-parse -q --verify HEAD 2>/dev/null)" ] || [ -z "$(mlx_git status --porcelain)" ]; then
  # A fresh clone may sit on upstream's default branch: move it to the base.
  mlx_git merge-base --is-ancestor "$base" HEAD 2>/dev/null || mlx_git checkout -q --detach "$base"
fi
