"""The Q-network: the Nature DQN CNN (Mnih et al. 2015) with an optional dueling head."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from dataset.errors import ConfigError
from trainer.onednn_linear import OneDnnLinear

if TYPE_CHECKING:
    from trainer.config import TrainConfig

__all__ = ["QNetwork"]


class QNetwork(nn.Module):
    """Nature CNN: 32x8x8/4, 64x4x4/2, 64x3x3/1, 512 units, one output per action.

    Takes the uint8 frame stack (B, C, h, w) (or float32 holding the same 0-255
    values) and scales it to [0, 1] itself, so batches stay uint8 (4x smaller) until
    they are on the device. The scaling is folded into the first convolution's
    weights: 8K multiplies per forward instead of one per input value (at batch 256
    the separate multiply took a tenth of a float32 CPU update). Any memory format
    works; the learner passes channels-last (``trainer.learner.network_inputs``). The linear
    layers are ``OneDnnLinear`` (an ``nn.Linear`` whose float32 CPU matmuls run in oneDNN,
    not MKL; trainer/onednn_linear.py). ``dueling``
    splits the head into value and advantage streams, the advantage centred on
    its mean (Wang et al. 2016, eq. 9).
    """

    def __init__(
        self, in_channels: int, n_actions: int, *, height: int = 84, width: int = 84, dueling: bool = False
    ) -> None:
        if min(height, width) < 36:
            # 8/4 -> 4/2 -> 3/1 convolutions need at least 36 pixels per side.
            raise ConfigError(f"frames of {height}x{width} are too small for the Nature CNN; use 36x36 or more")
        super().__init__()
        self.n_actions = n_actions
        self.dueling = dueling
        self.encoder = nn.Sequential(
            nn.Conv2d(in_channels, 32, kernel_size=8, stride=4),
            nn.ReLU(inplace=True),
            nn.Conv2d(32, 64, kernel_size=4, stride=2),
            nn.ReLU(inplace=True),
            nn.Conv2d(64, 64, kernel_size=3, stride=1),
            nn.ReLU(inplace=True),
            nn.Flatten(),
        )
        with torch.no_grad():
            n_features = self.encoder(torch.zeros(1, in_channels, height, width)).shape[1]
        if dueling:
            self.value = nn.Sequential(OneDnnLinear(n_features, 512), nn.ReLU(inplace=True), OneDnnLinear(512, 1))
            self.advantage = nn.Sequential(
                OneDnnLinear(n_features, 512), nn.ReLU(inplace=True), OneDnnLinear(512, n_actions)
            )
        else:
            self.head = nn.Sequential(
                OneDnnLinear(n_features, 512), nn.ReLU(inplace=True), OneDnnLinear(512, n_actions)
            )

    @classmethod
    def of_config(cls, config: TrainConfig, n_actions: int) -> QNetwork:
        """The network a run of ``config`` trains: states of ``frame_stack`` preprocessed frames."""
        pre = config.preprocess
        return cls(config.frame_stack * pre.channels, n_actions, height=pre.height, width=pre.width,
                   dueling=config.dueling)  # fmt: skip

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        conv1 = self.encoder[0]
        assert isinstance(conv1, nn.Conv2d)
        x = F.conv2d(frames.float(), conv1.weight * (1.0 / 255.0), conv1.bias, conv1.stride)
        for layer in list(self.encoder)[1:]:
            x = layer(x)
        if self.dueling:
            adv = self.advantage(x)
            return self.value(x) + adv - adv.mean(dim=1, keepdim=True)
        return self.head(x)
