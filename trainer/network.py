"""The Q-network: an encoder (Nature CNN or Impala CNN), an optional previous-action input, a head.

Options (``TrainConfig``; docs/training.md says which pay off here and why):

* ``--encoder nature``: the Nature DQN CNN (Mnih et al. 2015), 32x8x8/4, 64x4x4/2, 64x3x3/1, 512 units.
* ``--encoder impala``: the Impala CNN (Espeholt et al. 2018, fig. 3): three stages of a 3x3
  convolution, a 3x3/2 max-pool and two residual blocks, 16/32/32 channels times
  ``--impala-width`` (BBF uses 4), then 256 units.
* ``--layer-norm``: LayerNorm on the encoder's features and on the hidden layer of the head,
  the normalisation PQN (Gallici et al. 2024), RLPD (Ball et al. 2023) and WSRL rely on to keep
  Q-learning with function approximation stable without a target network trick.
* ``--prev-action``: the previous action, one-hot, joins the features before the head
  (R2D2, Kapturowski et al. 2019). A state whose previous action is unknown (an episode's first)
  gets the zero vector. Airstriker fires only on a fresh press of B, which frames alone do not show.
* ``--value-loss hl-gauss``: the head outputs a histogram over ``--value-bins`` fixed bins per action
  and Q is its mean (Farebrother et al. 2024, "Stop Regressing"); ``trainer.loss`` fits it with
  a cross-entropy to a Gaussian-smoothed target.
* ``--dueling``: value and advantage streams, the advantage centred on its mean (Wang et al. 2016, eq. 9).

The network takes the uint8 frame stack (B, C, h, w) (or float32 holding the same 0-255 values,
in any memory format: the learner passes channels-last, ``trainer.learner.network_inputs``) and
scales it to [0, 1] itself, so batches stay uint8 (4x smaller) until they are on the device; the
Nature CNN folds the scaling into its first convolution's weights. The linear layers are
``OneDnnLinear`` (float32 CPU matmuls in oneDNN, trainer/onednn_linear.py). ``forward`` always returns Q-values
(B, A); ``logits`` returns the histogram logits (B, A, bins) of a distributional head.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from dataset.errors import ConfigError
from trainer.onednn_linear import OneDnnLinear

if TYPE_CHECKING:
    from trainer.config import TrainConfig

__all__ = ["ImpalaEncoder", "QNetwork", "nature_encoder"]


def nature_encoder(in_channels: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(in_channels, 32, kernel_size=8, stride=4),
        nn.ReLU(inplace=True),
        nn.Conv2d(32, 64, kernel_size=4, stride=2),
        nn.ReLU(inplace=True),
        nn.Conv2d(64, 64, kernel_size=3, stride=1),
        nn.ReLU(inplace=True),
        nn.Flatten(),
    )


class _Residual(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)
        self.conv1 = nn.Conv2d(channels, channels, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Not in place: x is the skip connection.
        return x + self.conv1(F.relu(self.conv0(F.relu(x))))


class ImpalaEncoder(nn.Module):
    """Espeholt et al. 2018, fig. 3 (the "large" network): 3 x (conv, max-pool, 2 residual blocks), ReLU."""

    def __init__(self, in_channels: int, width: int = 1) -> None:
        super().__init__()
        stages: list[nn.Module] = []
        c = in_channels
        for out in (16 * width, 32 * width, 32 * width):
            stages += [
                nn.Conv2d(c, out, kernel_size=3, padding=1),
                nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
                _Residual(out),
                _Residual(out),
            ]
            c = out
        self.stages = nn.Sequential(*stages)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(F.relu(self.stages(x)), 1)


def _mlp(n_in: int, hidden: int, n_out: int, layer_norm: bool) -> nn.Sequential:
    if layer_norm:
        return nn.Sequential(OneDnnLinear(n_in, hidden), nn.LayerNorm(hidden), nn.ReLU(inplace=True),
                             OneDnnLinear(hidden, n_out))  # fmt: skip
    return nn.Sequential(OneDnnLinear(n_in, hidden), nn.ReLU(inplace=True), OneDnnLinear(hidden, n_out))


class QNetwork(nn.Module):
    """Encoder -> [LayerNorm] -> [+ previous action] -> head (plain or dueling; scalar or histogram)."""

    def __init__(
        self,
        in_channels: int,
        n_actions: int,
        *,
        height: int = 84,
        width: int = 84,
        dueling: bool = False,
        encoder: str = "nature",
        impala_width: int = 1,
        layer_norm: bool = False,
        prev_action: bool = False,
        support: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.n_actions = n_actions
        self.dueling = dueling
        self.prev_action = prev_action
        self.n_bins = 1 if support is None else int(support.numel())
        if encoder == "nature":
            if min(height, width) < 36:
                # 8/4 -> 4/2 -> 3/1 convolutions need at least 36 pixels per side.
                raise ConfigError(f"frames of {height}x{width} are too small for the Nature CNN; use 36x36 or more")
            self.encoder: nn.Module = nature_encoder(in_channels)
            hidden = 512
        elif encoder == "impala":
            self.encoder = ImpalaEncoder(in_channels, impala_width)
            hidden = 256  # Espeholt et al. 2018
        else:
            raise ConfigError(f"--encoder {encoder!r} is not nature or impala")
        with torch.no_grad():
            n_features = self.encoder(torch.zeros(1, in_channels, height, width)).shape[1]
        self.feature_norm: nn.Module = nn.LayerNorm(n_features) if layer_norm else nn.Identity()
        n_in = n_features + (n_actions if prev_action else 0)
        if dueling:
            self.value = _mlp(n_in, hidden, self.n_bins, layer_norm)
            self.advantage = _mlp(n_in, hidden, n_actions * self.n_bins, layer_norm)
        else:
            self.head = _mlp(n_in, hidden, n_actions * self.n_bins, layer_norm)
        # The histogram's bin centres: fixed by the config, so moved with the module but not saved
        # (checkpoints of scalar networks keep loading).
        self.register_buffer("support", support if support is not None else torch.zeros(0), persistent=False)

    @classmethod
    def of_config(
        cls, config: TrainConfig, n_actions: int, *, state_shape: tuple[int, int, int] | None = None
    ) -> QNetwork:
        """The network a run of ``config`` trains: states of ``frame_stack`` preprocessed frames
        (``state_shape`` (C, h, w) when the caller has it from the data)."""
        pre = config.preprocess
        c, h, w = state_shape or (config.frame_stack * pre.channels, pre.height, pre.width)
        return cls(
            c, n_actions, height=h, width=w,
            dueling=config.dueling, encoder=config.encoder.value, impala_width=config.impala_width,
            layer_norm=config.layer_norm, prev_action=config.prev_action, support=config.value_support(),
        )  # fmt: skip

    @property
    def distributional(self) -> bool:
        return self.n_bins > 1

    def _outputs(self, frames: torch.Tensor, prev_actions: torch.Tensor | None) -> torch.Tensor:
        """(B, A, bins) raw outputs (bins = 1 for a scalar head)."""
        x = self.feature_norm(self._encode(frames))
        if self.prev_action:
            if prev_actions is None:
                raise ValueError("this network takes the previous action (--prev-action); pass prev_actions")
            # -1 (no previous action) becomes the zero vector.
            one_hot = F.one_hot((prev_actions.long() + 1).clamp(min=0), self.n_actions + 1)[:, 1:]
            x = torch.cat([x, one_hot.to(x.dtype)], dim=1)
        b = x.shape[0]
        if self.dueling:
            adv = self.advantage(x).view(b, self.n_actions, self.n_bins)
            return self.value(x).view(b, 1, self.n_bins) + adv - adv.mean(dim=1, keepdim=True)
        return self.head(x).view(b, self.n_actions, self.n_bins)

    def _encode(self, frames: torch.Tensor) -> torch.Tensor:
        if isinstance(self.encoder, ImpalaEncoder):
            # Its 3x3 convolutions at full resolution dwarf one multiply per input value.
            return self.encoder(frames.float() * (1.0 / 255.0))
        # Nature CNN: the 1/255 scaling folded into the first convolution's weights, 8K multiplies
        # per forward instead of one per input value (a tenth of a float32 CPU update at batch 256).
        conv1 = self.encoder[0]
        assert isinstance(conv1, nn.Conv2d)
        x = F.conv2d(frames.float(), conv1.weight * (1.0 / 255.0), conv1.bias, conv1.stride)
        for layer in list(self.encoder)[1:]:
            x = layer(x)
        return x

    def logits(self, frames: torch.Tensor, prev_actions: torch.Tensor | None = None) -> torch.Tensor:
        """(B, A, bins) histogram logits of a distributional head."""
        if not self.distributional:
            raise ValueError("logits() needs a distributional head (--value-loss hl-gauss)")
        return self._outputs(frames, prev_actions)

    def q_of_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """Q = the histogram's mean, in float32."""
        return torch.softmax(logits.float(), dim=-1) @ self.support.float()

    def forward(
        self, frames: torch.Tensor, prev_actions: torch.Tensor | None = None, *, return_logits: bool = False
    ) -> torch.Tensor:
        """Q-values (B, A); with ``return_logits`` a distributional head's (B, A, bins) logits instead
        (through ``forward``, so a DistributedDataParallel wrapper sees the call)."""
        if return_logits:
            return self.logits(frames, prev_actions)
        out = self._outputs(frames, prev_actions)
        if self.distributional:
            return self.q_of_logits(out)
        return out.squeeze(-1)
