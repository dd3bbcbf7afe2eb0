#!/usr/bin/env bash
# Build the sonic-rl BizHawk tool with Mono's mcs (Linux; Windows users: see docs/bizhawk.md).
#
#   ./build.sh            core + headless test client (bin/SonicRecHeadless.exe); no BizHawk needed
#   ./build.sh tool       also the external tool DLL (bin/SonicRLRecorderTool.dll) against the
#                         BizHawk 2.9.1 assemblies in $BIZHAWK_DLL_DIR (default: lib/, or the
#                         dll/ folder of a BizHawk install). Never commit those assemblies.
#
# The language level is pinned to C# 7 so the sources keep building with Debian's mcs.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
command -v mcs >/dev/null || { echo "error: mcs not found; install Mono (apt-get install mono-mcs mono-devel, or ci-setup.sh)" >&2; exit 1; }
mkdir -p bin
core=(src/Core/*.cs)
mcs -nologo -langversion:7 -warnaserror+ -target:exe -out:bin/SonicRecHeadless.exe \
    "${core[@]}" test_client/*.cs
echo "built bin/SonicRecHeadless.exe"
if [[ "${1:-}" == "tool" ]]; then
    dlls="${BIZHAWK_DLL_DIR:-$here/lib}"
    for d in BizHawk.Client.Common BizHawk.Emulation.Common BizHawk.Common; do
        [[ -f "$dlls/$d.dll" ]] || { echo "error: $dlls/$d.dll is missing; set BIZHAWK_DLL_DIR to BizHawk's dll/ folder" >&2; exit 1; }
    done
    facade="$(dirname "$(command -v mcs)")/../lib/mono/4.5/Facades/netstandard.dll"
    [[ -f "$facade" ]] || facade=/usr/lib/mono/4.5/Facades/netstandard.dll
    mcs -nologo -langversion:7 -warnaserror+ -target:library -out:bin/SonicRLRecorderTool.dll \
        -r:"$facade" \
        -r:"$dlls/BizHawk.Client.Common.dll" -r:"$dlls/BizHawk.Emulation.Common.dll" -r:"$dlls/BizHawk.Common.dll" \
        -r:System.Windows.Forms.dll -r:System.Drawing.dll \
        "${core[@]}" src/BizHawk/*.cs src/Form/*.cs
    echo "built bin/SonicRLRecorderTool.dll (copy it into BizHawk's ExternalTools folder)"
fi
