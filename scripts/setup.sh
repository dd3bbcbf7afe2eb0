#!/usr/bin/env bash
# Set up sonic-rl in ./.venv (idempotent).
#   bash scripts/setup.sh          the package and its commands
#   bash scripts/setup.sh --test   also the test tools, and Mono for the C# BizHawk-tool tests
#
# torch comes first, chosen for this machine: with no NVIDIA GPU we install the CPU build
# (a plain `pip install torch` on Linux pulls a CUDA build of several GB); with a GPU, PyPI's
# default CUDA build. Set TORCH_SPEC to override (e.g. TORCH_SPEC="torch==2.13.0").
set -euo pipefail
cd "$(dirname "$0")/.."

want_tests=0
for arg in "$@"; do
  case "$arg" in
    --test) want_tests=1 ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option $arg (try --help)" >&2; exit 2 ;;
  esac
done

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "setup.sh: sonic-rl needs Python 3.11 or newer ($PYTHON is $("$PYTHON" -V 2>&1))" >&2
  exit 2
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)

if ! .venv/bin/python -c 'import torch' 2>/dev/null; then
  if [ -n "${TORCH_SPEC:-}" ]; then
    "${PIP[@]}" "$TORCH_SPEC"
  elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    echo "setup.sh: NVIDIA GPU found: installing PyPI's CUDA build of torch" >&2
    "${PIP[@]}" torch
  else
    echo "setup.sh: no NVIDIA GPU: installing the CPU build of torch" >&2
    # The +cpu build where pip can see one (a local wheel folder, a configured mirror); otherwise
    # PyTorch's own CPU index (PyPI's Linux wheels are CUDA builds).
    "${PIP[@]}" "torch==2.13.0+cpu" 2>/dev/null \
      || "${PIP[@]}" torch --index-url https://download.pytorch.org/whl/cpu
  fi
fi

if [ "$want_tests" = 1 ]; then
  "${PIP[@]}" -e ".[test]"
  bash bizhawk_recorder_tool/ci-setup.sh
else
  "${PIP[@]}" -e .
fi
echo "setup.sh: ready; commands are in .venv/bin (sonic-rec, sonic-train)" >&2
