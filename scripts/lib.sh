# Shared settings and helpers for the harness scripts. Source it; do not run it.
# Every constant the scripts share lives here.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MLX="$ROOT/mlx"
PATCHES="$ROOT/patches/mlx"
SERIES="$PATCHES/series"
BUILD="$ROOT/build"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"

# The branch the series is applied on, and the ref that remembers its base.
BRANCH=turboquant
BASE_REF=refs/patches/upstream-head
# The tip of the last 'make apply': commits up to it came from patches/.
APPLIED_REF=refs/patches/applied
# Upstream only reaches the pinned base through this pull request ref.
BASE_PULL_REF=refs/pull/3026/head
MLX_URL=https://github.com/ml-explore/mlx.git

# Fixed committer so that applying the series twice gives the same commit ids.
export GIT_COMMITTER_NAME="TurboQuant series"
export GIT_COMMITTER_EMAIL="turboquant@invalid"

die() {
  echo "error: $*" >&2
  exit 1
}

note() { echo "==> $*"; }

# The pinned base: the gitlink of mlx/ in the project's HEAD (or index, before
# the first commit). It is the single source of truth for the base commit.
pinned_base() {
  local sha
  sha=$(git -C "$ROOT" ls-files -s mlx | awk '$1 == "160000" {print $2}')
  [ -n "$sha" ] || die "no gitlink for mlx/ in $ROOT"
  echo "$sha"
}

# Patch names in series order (comments and blank lines dropped).
series_entries() {
  [ -f "$SERIES" ] || die "missing $SERIES"
  sed -e 's/#.*//' -e 's/[[:space:]]*$//' "$SERIES" | awk 'NF'
}

mlx_git() { git -C "$MLX" "$@"; }

mlx_gitdir() { mlx_git rev-parse --absolute-git-dir; }

apply_failed_marker() { echo "$(mlx_gitdir)/turboquant-apply-failed"; }

# Sorted stable patch-ids of commits (git log revision arguments), and of the
# patch files.
commit_patch_ids() {
  mlx_git log -p --no-merges --format='commit %H' "$@" |
    git patch-id --stable | awk '{print $1}' | sort
}

file_patch_ids() {
  local name
  series_entries | while read -r name; do
    git patch-id --stable <"$PATCHES/$name" | awk '{print $1}'
  done | sort
}
