"""Config dataclasses are the command line: defaults, names and parsing come from the fields."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from dataset.errors import ConfigError
from trainer import flags
from trainer.cli import cli
from trainer.config import Algo, DeviceChoice, EpsilonSchedule, EvalConfig, OnlineConfig, PreprocessConfig, TrainConfig


def _parse(cls: type, args: list[str], **values: Any) -> tuple[Any, dict[str, str]]:
    """What a command with the flags of ``cls`` builds from ``args``, and which fields were typed."""
    seen: dict[str, Any] = {}

    @click.command()
    @flags.options(cls)
    @click.pass_context
    def command(ctx: click.Context, **opts: Any) -> None:
        seen["config"] = flags.build(cls, opts, **values)
        seen["given"] = flags.given(ctx, cls)
        assert not opts  # build took every option

    result = CliRunner().invoke(command, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return seen["config"], seen["given"]


@pytest.mark.parametrize(("cls", "values"), [
    (TrainConfig, {}), (OnlineConfig, {"run_dir": "r"}), (EvalConfig, {"run_dir": Path("r")}),
])  # fmt: skip
def test_no_flags_give_the_dataclass_defaults(cls: type, values: dict[str, Any]) -> None:
    config, typed = _parse(cls, [], **values)
    assert config == cls(**values) and typed == {}


def test_flags_set_fields_by_name_type_and_parser() -> None:
    config, typed = _parse(TrainConfig, [
        "--algo", "dqn", "--n-step", "3", "--lr", "0.5", "--frame-size", "42x40", "--crop", "1,2,3,4", "--color",
        "--no-amp", "--dueling", "--keep-checkpoints", "2", "--device", "cpu",
    ])  # fmt: skip
    assert config == dataclasses.replace(
        TrainConfig(), algo=Algo.DQN, n_step=3, lr=0.5, amp=False, dueling=True, keep_checkpoints=2,
        device=DeviceChoice.CPU, preprocess=PreprocessConfig(height=42, width=40, grayscale=False, crop=(1, 2, 3, 4)),
    )  # fmt: skip
    assert typed == {
        "algo": "--algo", "n_step": "--n-step", "lr": "--lr", "preprocess.height": "--frame-size",
        "preprocess.width": "--frame-size", "preprocess.crop": "--crop", "preprocess.grayscale": "--color",
        "amp": "--no-amp", "dueling": "--dueling", "keep_checkpoints": "--keep-checkpoints", "device": "--device",
    }  # fmt: skip
    online, _ = _parse(OnlineConfig, ["--epsilon", "0.5", "0.1", "200", "--max-steps", "30"], run_dir="r")
    assert online.epsilon == EpsilonSchedule(0.5, 0.1, 200) and online.max_steps == 30


def test_a_negatable_flag_sets_either_value_and_old_configs_keep_theirs(tmp_path: Path) -> None:
    # LayerNorm and the previous action are on by default since issue 10's measurements.
    assert TrainConfig().layer_norm and TrainConfig().prev_action
    config, typed = _parse(TrainConfig, ["--no-layer-norm", "--prev-action"])
    assert not config.layer_norm and config.prev_action
    assert typed == {"layer_norm": "--layer-norm", "prev_action": "--prev-action"}
    assert _parse(TrainConfig, ["--layer-norm"])[0].layer_norm
    # A config.json written before the defaults changed has neither field: it loads as it was trained.
    d = TrainConfig().to_dict()
    del d["layer_norm"], d["prev_action"]
    (tmp_path / "config.json").write_text(json.dumps(d))
    old = TrainConfig.load(tmp_path / "config.json")
    assert not old.layer_norm and not old.prev_action


def test_flag_names_and_value_errors_name_the_real_flag() -> None:
    assert flags.flag_name(TrainConfig, "amp") == "--no-amp"
    assert flags.flag_name(TrainConfig, "preprocess.width") == "--frame-size"
    assert flags.flag_name(OnlineConfig, "progress_every_s") == "--progress-every"
    with pytest.raises(ConfigError, match=r"^--keep-checkpoints -1 must be non-negative"):
        TrainConfig(keep_checkpoints=-1)
    with pytest.raises(ConfigError, match=r"^--frame-size '4by4' is not HEIGHTxWIDTH"):
        _parse(TrainConfig, ["--frame-size", "4by4"])


@pytest.mark.parametrize("args", [["-h"], ["--help"], ["offline", "-h"], ["online", "-h"], ["eval", "-h"]])
def test_help_with_h(args: list[str]) -> None:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0 and "Usage: " in result.output
