#!/usr/bin/env bash
# Run the whole test suite on a fresh machine: system libraries for a virtual
# X server (napari's canvas needs OpenGL), a virtual environment with the
# package and its test extras, the manifest check, then pytest under Xvfb.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v xvfb-run >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq xvfb xauth libgl1 libegl1 libxkbcommon-x11-0 libxcb-icccm4 libxcb-image0 \
      libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 libxcb-xinerama0 libxcb-xfixes0 \
      libxcb-shape0 libxcb-cursor0 libdbus-1-3 libfontconfig1 >/dev/null
  else
    echo "tests/run.sh: install xvfb (and the xcb libraries) to run the napari widget tests" >&2
  fi
fi

venv=${VENV:-.venv}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
# torch first, pinned: an unpinned torch would pull a multi-GB CUDA build.
"$venv/bin/python" -m pip install -q --disable-pip-version-check torch==2.13.0
"$venv/bin/python" -m pip install -q --disable-pip-version-check ".[testing]"
"$venv/bin/npe2" validate napari-colorize
exec "$venv/bin/python" -m pytest "$@"
