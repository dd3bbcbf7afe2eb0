"""The Q-network's options: encoders, LayerNorm, the previous action, the histogram head."""

from __future__ import annotations

import pytest
import torch

from dataset.errors import ConfigError
from trainer.config import Encoder, PreprocessConfig, TrainConfig, ValueLoss
from trainer.network import QNetwork

PRE = PreprocessConfig(height=36, width=36)


def _net(**kw: object) -> QNetwork:
    """The 2015 network (no LayerNorm, no previous action) with the options ``kw``."""
    torch.manual_seed(0)
    kw = {"layer_norm": False, "prev_action": False, **kw}
    return QNetwork.of_config(TrainConfig(preprocess=PRE, **kw), 6)  # type: ignore[arg-type]


def _frames(b: int = 3) -> torch.Tensor:
    return torch.randint(0, 256, (b, 4, 36, 36), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("kw", [
    {}, {"encoder": Encoder.IMPALA}, {"encoder": Encoder.IMPALA, "impala_width": 2}, {"layer_norm": True},
    {"dueling": True, "layer_norm": True}, {"value_loss": ValueLoss.HL_GAUSS},
    {"value_loss": ValueLoss.HL_GAUSS, "dueling": True},
])  # fmt: skip
def test_every_option_gives_one_q_per_action(kw: dict[str, object]) -> None:
    q = _net(**kw)(_frames())
    assert q.shape == (3, 6) and q.dtype == torch.float32 and torch.isfinite(q).all()


def test_impala_width_multiplies_the_channels() -> None:
    one, two = _net(encoder=Encoder.IMPALA), _net(encoder=Encoder.IMPALA, impala_width=2)
    assert one.encoder.stages[0].out_channels == 16 and two.encoder.stages[0].out_channels == 32
    assert sum(p.numel() for p in two.parameters()) > sum(p.numel() for p in one.parameters())
    # Impala keeps 84x84 frames in full at its first convolution; the Nature CNN strides by 4.
    assert any(isinstance(m, torch.nn.MaxPool2d) for m in one.modules())


def test_layer_norm_normalises_the_features() -> None:
    net = _net(layer_norm=True)
    feats = net.feature_norm(net.encoder(_frames().float() / 255))
    assert feats.mean(dim=1).abs().max() < 1e-4
    assert (feats.std(dim=1, unbiased=False) - 1).abs().max() < 1e-2
    assert isinstance(_net().feature_norm, torch.nn.Identity)


def test_the_previous_action_changes_q_and_is_required() -> None:
    net = _net(prev_action=True)
    frames = _frames(1).expand(3, -1, -1, -1)
    q = net(frames, torch.tensor([-1, 0, 5]))
    assert not torch.allclose(q[0], q[1]) and not torch.allclose(q[1], q[2])
    # -1 (no previous action) is the zero vector: the same as a network input without that part.
    assert net._outputs(frames[:1], torch.tensor([-1])).shape == (1, 6, 1)
    with pytest.raises(ValueError, match="previous action"):
        net(frames)


def test_hl_gauss_q_is_the_histogram_mean_over_the_support() -> None:
    net = _net(value_loss=ValueLoss.HL_GAUSS, value_bins=11, value_min=-1.0, value_max=1.0)
    assert net.support.shape == (11,)
    assert net.support[0].item() == pytest.approx(-1 + 1 / 11) and net.support[-1].item() == pytest.approx(1 - 1 / 11)
    logits = net.logits(_frames())
    assert logits.shape == (3, 6, 11)
    expected = (torch.softmax(logits, dim=-1) * net.support).sum(-1)
    assert torch.allclose(net(_frames()), expected, atol=1e-6)
    # The support is fixed by the config: not in the state dict, so scalar checkpoints keep loading.
    assert "support" not in net.state_dict()
    with pytest.raises(ValueError, match="distributional"):
        _net().logits(_frames())


def test_options_are_checked_with_the_flag_names() -> None:
    with pytest.raises(ConfigError, match="--impala-width 0"):
        TrainConfig(impala_width=0)
    with pytest.raises(ConfigError, match="--value-max"):
        TrainConfig(value_min=1.0, value_max=1.0)
    with pytest.raises(ConfigError, match="--random-shift"):
        TrainConfig(random_shift=-1)
    with pytest.raises(ConfigError):
        TrainConfig(encoder="resnet")  # type: ignore[arg-type]
