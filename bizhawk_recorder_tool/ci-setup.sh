#!/usr/bin/env bash
# CI: install Mono from Debian packages (only when missing) and build the C# core plus the
# headless test client with mcs. Idempotent and quiet; called from .ci/run.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if ! command -v mcs >/dev/null || ! command -v mono >/dev/null; then
    sudo=""
    [[ "$(id -u)" == 0 ]] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends mono-mcs mono-devel >/dev/null
fi
bash "$here/build.sh" >/dev/null
echo "mono $(mono --version | head -n1 | sed 's/.*version \([^ ]*\).*/\1/'): built $here/bin/SonicRecHeadless.exe"
