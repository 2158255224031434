#!/usr/bin/env bash
# Lint the series without touching mlx/: every listed patch exists once and
# every patch file is listed; in a scratch worktree each patch applies exactly
# (no 3-way merge) in order, has a subject and a body, adds no trailing
# whitespace, and leaves its changed C++ and Python lines formatted as MLX's
# .clang-format, black and isort (profile black) want; the codebooks in the
# series are the solver's. The harness's own Python is checked with black and
# isort too.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

base=$(pinned_base)
[ -e "$MLX/.git" ] && mlx_git cat-file -e "$base^{commit}" 2>/dev/null ||
  "$ROOT/scripts/submodule.sh"
fail=0
bad() {
  echo "check: $*" >&2
  fail=1
}

# The series file and the patch files agree.
entries=$(series_entries)
dups=$(echo "$entries" | sort | uniq -d)
[ -z "$dups" ] || bad "listed more than once in patches/series: $dups"
for f in "$PATCHES"/*.patch; do
  [ -e "$f" ] || continue
  echo "$entries" | grep -qxF "$(basename "$f")" || bad "$(basename "$f") is not listed in patches/series"
  [ -z "$(tail -c1 "$f")" ] || bad "$(basename "$f") does not end with a newline"
done

tree="$BUILD/check/mlx"
rm -rf "$tree"
mlx_git worktree prune
mkdir -p "$BUILD/check"
mlx_git worktree add -q --detach "$tree" "$base"
trap 'mlx_git worktree remove --force "$tree"' EXIT
while IFS= read -r name; do
  [ -f "$PATCHES/$name" ] || { bad "patches/series names $name, which is not in patches/"; continue; }
  if ! git -C "$tree" am -q --keep-cr "$PATCHES/$name" 2>"$BUILD/check/am.log"; then
    bad "$name does not apply exactly: $(head -3 "$BUILD/check/am.log")"
    git -C "$tree" am --abort
    break
  fi
  [ -n "$(git -C "$tree" log -1 --format=%s)" ] || bad "$name has no subject"
  [ -n "$(git -C "$tree" log -1 --format=%b | tr -d '[:space:]')" ] ||
    bad "$name has no body saying why it exists"
  git -C "$tree" diff --check HEAD~1 HEAD >/dev/null || bad "$name adds trailing whitespace:
$(git -C "$tree" diff --check HEAD~1 HEAD | head -5)"
  if ! (cd "$tree" && "$VENV/bin/git-clang-format" --binary "$VENV/bin/clang-format" --quiet \
    --extensions c,h,cpp,cu,cuh,metal --diff HEAD~1 HEAD) >"$BUILD/check/format.diff" 2>&1; then
    bad "$name: changed C++ lines are not clang-format clean:
$(head -40 "$BUILD/check/format.diff")"
  fi
  py=$(git -C "$tree" diff --name-only --diff-filter=AM HEAD~1 HEAD -- '*.py')
  if [ -n "$py" ]; then
    (cd "$tree" && echo "$py" | xargs "$VENV/bin/black" -q --check) || bad "$name: Python is not black clean"
    (cd "$tree" && echo "$py" | xargs "$VENV/bin/isort" -q --profile black --check-only) ||
      bad "$name: Python imports are not isort clean"
  fi
done < <(echo "$entries")

# The codebook constants in the series are the solver's.
"$PY" "$ROOT/scripts/turbo_codebooks.py" --check "$tree" ||
  bad "the series' TurboQuant codebooks differ from scripts/turbo_codebooks.py"

"$VENV/bin/black" -q --check "$ROOT/scripts" "$ROOT/python_tests" || bad "the harness's Python is not black clean"
"$VENV/bin/isort" -q --settings-path "$ROOT" --check-only "$ROOT/scripts" "$ROOT/python_tests" ||
  bad "the harness's Python imports are not isort clean"

[ "$fail" -eq 0 ] || die "the series has problems (above)"
note "series ok: $(echo "$entries" | wc -l) patches"
