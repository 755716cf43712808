#!/usr/bin/env bash
# The s3prl path, tested for real: a separate virtual environment with s3prl 0.4.18, torchaudio<2.9
# and the torch that torchaudio 2.8 pins, built once and cached in
# ${SERBENCH_CI_CACHE:-$HOME/.cache/serbench-ci}/s3prl-venv; then serbench is installed into it and
# tests/s3prl/ run there. If the environment cannot be built (no registry, a timeout), a loud banner
# says so and the script exits 0, so the rest of CI goes on. A failing test exits non-zero.
set -uo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${SERBENCH_CI_CACHE:-$HOME/.cache/serbench-ci}"
VENV="$CACHE/s3prl-venv"
READY="$VENV/.serbench-ready"
BUILD_SECONDS="${SERBENCH_S3PRL_BUILD_SECONDS:-900}"
PYTHON="${SERBENCH_S3PRL_PYTHON:-python3}"
PINS=("torch==2.8.0" "torchaudio==2.8.0" "s3prl==0.4.18")

skip() {
  echo "################################################################################"
  echo "###  s3prl TESTS SKIPPED: $1"
  echo "###  (venv: $VENV; log: $CACHE/s3prl-build.log)"
  echo "################################################################################"
  exit 0
}

mkdir -p "$CACHE" || skip "cannot create $CACHE"
if [[ ! -f "$READY" ]]; then
  echo "s3prl: building $VENV (once; cached afterwards, at most ${BUILD_SECONDS}s)"
  rm -rf "$VENV"
  if ! timeout "$BUILD_SECONDS" bash -c '
      set -e
      "$0" -m venv "$1"
      "$1/bin/pip" install -q --upgrade pip
      "$1/bin/pip" install -q "${@:2}" pytest
    ' "$PYTHON" "$VENV" "${PINS[@]}" "transformers>=4.40" >"$CACHE/s3prl-build.log" 2>&1; then
    tail -5 "$CACHE/s3prl-build.log"
    skip "could not build the s3prl environment within ${BUILD_SECONDS}s"
  fi
  touch "$READY"
fi

# serbench itself, from this checkout, with its dependencies but never moving the pinned torch
if ! timeout "$BUILD_SECONDS" "$VENV/bin/pip" install -q -e "$REPO" "${PINS[@]}" \
    >"$CACHE/s3prl-install.log" 2>&1; then
  tail -5 "$CACHE/s3prl-install.log"
  skip "could not install serbench into the s3prl environment"
fi
"$VENV/bin/python" -c "import s3prl, torchaudio, torch; print('s3prl env: torch', torch.__version__,
      'torchaudio', torchaudio.__version__)" || skip "s3prl does not import in $VENV"

cd "$REPO" && exec "$VENV/bin/python" -m pytest tests/s3prl -q -p no:cacheprovider
