"""benchmarks/learn.py --smoke: the whole protocol (record, offline, eval, d3rlpy, online, eval) on tiny budgets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_bootstrap_interval_brackets_the_mean() -> None:
    sys.path.insert(0, str(REPO))
    from benchmarks.learn import bootstrap_ci

    lo, hi = bootstrap_ci([100.0, 200.0, 300.0])
    assert 100.0 <= lo < 200.0 < hi <= 300.0
    assert bootstrap_ci([5.0]) == (5.0, 5.0)


def test_smoke_runs_every_phase_and_writes_its_results(tmp_path: Path) -> None:
    out = tmp_path / "learn"
    # With a CQL term kept online (Cal-QL's fine-tuning), which gets its own copy of each run.
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "learn.py"), "--smoke", "--out", str(out),
                           "--online-cql-alpha", "0.1"],
                          capture_output=True, text=True, timeout=400, cwd=REPO)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "95% CI" in done.stdout and "offline d3rlpy" in done.stdout and "online +40 steps" in done.stdout
    assert "protocol:" in done.stderr and "d3rlpy DiscreteCQL seed 1" in done.stderr  # progress bars
    results = json.loads((out / "results.json").read_text())
    assert len(results["behaviour"]) == 2  # one random and one scripted episode
    assert set(results["offline"]) == {"cql+ln+prev", "d3rlpy"}
    assert all(set(v) == {"0", "1"} and all(len(r) == 1 for r in v.values()) for v in results["offline"].values())
    assert [len(c) for c in results["online"].values()] == [1, 1]
    from trainer.checkpoint import latest_checkpoint, load_checkpoint

    ckpt = latest_checkpoint(out / "runs" / "cql+ln+prev-s0-online-cql0.1")
    assert ckpt is not None and load_checkpoint(ckpt)["online"]["cql_alpha"] == 0.1
    settings = json.loads((out / "settings.json").read_text())
    assert settings["arms"]["cql+ln+prev"]["prev_action"] and settings["args"]["updates"] == 4
    assert settings["d3rlpy"]["version"] == "d3rlpy==2.8.1"
    png = (out / "learning_curve.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000
    assert (out / "results.md").read_text().startswith("| policy |")
