#!/usr/bin/env bash
# Set up napari-vsr on a fresh Debian/Ubuntu machine with Python 3.11:
#   - the Debian packages a headless napari needs (Xvfb, xcb, EGL/GL),
#   - a virtual environment in .venv with CPU-only PyTorch pinned by constraints-cpu.txt,
#   - napari-vsr itself (editable) with its Qt and test extras.
# Idempotent: re-running only installs what is missing.
# Set NAPARI_VSR_TORCH_CONSTRAINTS=none to let pip choose torch (e.g. a CUDA build).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3

APT_PACKAGES=(xvfb xauth libgl1 libegl1 libglib2.0-0 libfontconfig1 libdbus-1-3
  libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1
  libxcb-randr0 libxcb-render-util0 libxcb-shape0 libxcb-xfixes0 libxcb-xinerama0)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "setup: installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
CONSTRAINTS=(-c constraints-cpu.txt)
[ "${NAPARI_VSR_TORCH_CONSTRAINTS:-}" = "none" ] && CONSTRAINTS=()
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q "${CONSTRAINTS[@]}" -e ".[qt,test]"
echo "setup: done ($(.venv/bin/python -c 'import torch, napari; print("torch", torch.__version__, "napari", napari.__version__)'))"
