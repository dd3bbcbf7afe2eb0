"""Set up sonic-rl in ./.venv on any OS (idempotent); what scripts/setup.sh does, without bash.

    python scripts/setup.py          the package and its commands
    python scripts/setup.py --test   also the test tools (and, on Linux, Mono for the C# tool's tests)

On Windows run it with the Python launcher (``py -3.11 scripts/setup.py``); the
commands then live in ``.venv\\Scripts`` (sonic-rec.exe, sonic-train.exe).

torch comes first, chosen for this machine: with no NVIDIA GPU the CPU build
(torch==2.13.0+cpu where pip can see it, else PyTorch's CPU index: PyPI's Linux
wheels are CUDA builds of several GB); with a GPU, PyPI's default build. Set
TORCH_SPEC to override (e.g. TORCH_SPEC="torch==2.13.0").
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CPU_TORCH = "torch==2.13.0+cpu"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def say(message: str) -> None:
    print(f"setup.py: {message}", file=sys.stderr, flush=True)


def venv_python(env: Path) -> Path:
    """The interpreter inside a venv: bin/python on POSIX, Scripts\\python.exe on Windows."""
    windows = env / "Scripts" / "python.exe"
    return windows if windows.exists() or os.name == "nt" else env / "bin" / "python"


def has_nvidia_gpu() -> bool:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    try:
        return subprocess.run([smi, "-L"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def pip(python: Path, *args: str, check: bool = True) -> bool:
    cmd = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *args]
    done = subprocess.run(cmd, cwd=ROOT, stderr=None if check else subprocess.DEVNULL)
    if check and done.returncode != 0:
        say(f"failed: {' '.join(cmd)}")
        sys.exit(done.returncode)
    return done.returncode == 0


def install_torch(python: Path) -> None:
    if subprocess.run([str(python), "-c", "import torch"], capture_output=True).returncode == 0:
        return
    spec = os.environ.get("TORCH_SPEC")
    if spec:
        pip(python, spec)
    elif has_nvidia_gpu():
        say("NVIDIA GPU found: installing PyPI's CUDA build of torch")
        pip(python, "torch")
    else:
        say("no NVIDIA GPU: installing the CPU build of torch")
        # The +cpu build where pip can see one (a local wheel folder, a configured mirror); otherwise
        # PyTorch's own CPU index.
        if not pip(python, CPU_TORCH, check=False):
            pip(python, "torch", "--index-url", CPU_INDEX)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python scripts/setup.py", description=__doc__.splitlines()[0])
    ap.add_argument("--test", action="store_true", help="also the test tools (pytest, ruff, minari)")
    args = ap.parse_args(argv)
    # Run by whatever Python the user has, before any venv exists: the check is not outdated here.
    if sys.version_info < (3, 11):  # noqa: UP036
        say(f"sonic-rl needs Python 3.11 or newer (this is {sys.version.split()[0]})")
        return 2
    env = ROOT / ".venv"
    python = venv_python(env)
    if not python.exists():
        venv.EnvBuilder(with_pip=True).create(env)
        python = venv_python(env)
    install_torch(python)
    pip(python, "-e", ".[test]" if args.test else ".")
    if args.test and sys.platform.startswith("linux"):
        # The C# BizHawk tool's tests compile it with Mono (apt-get, as root); elsewhere they skip.
        done = subprocess.run(["bash", str(ROOT / "bizhawk_recorder_tool" / "ci-setup.sh")], cwd=ROOT)
        if done.returncode != 0:
            say("building the C# tool's test client failed (see above)")
            return done.returncode
    bin_dir = python.parent
    say(f"ready; commands are in {bin_dir.relative_to(ROOT)} (sonic-rec, sonic-train)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
