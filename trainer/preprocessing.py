"""Frame preprocessing shared by the replay store and the evaluation policy.

One function turns RGB frames into network inputs, so a frame seen while
playing is processed bit for bit like the frames the network was trained on.
The defaults follow Mnih et al. 2015 (Nature DQN): luminance, 84x84.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from dataset.errors import DatasetError
from trainer.config import PreprocessConfig

__all__ = ["output_shape", "preprocess_frames"]

# ITU-R BT.601 luma weights, the ones OpenCV's RGB2GRAY (and so the Atari
# wrappers of SB3/CleanRL) use.
_LUMA = torch.tensor([0.299, 0.587, 0.114], dtype=torch.float32)


def output_shape(config: PreprocessConfig) -> tuple[int, int, int]:
    """(channels, height, width) of one preprocessed frame."""
    return (config.channels, config.height, config.width)


def preprocess_frames(frames: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """(n, H, W, 3) uint8 RGB -> (n, C, h, w) uint8, C = 1 (gray) or 3.

    Resizing is area averaging (``F.interpolate(mode="area")``, like OpenCV's
    INTER_AREA that the Atari wrappers use): deterministic and free of the aliasing
    that nearest-neighbour shows on 320-wide Genesis frames.
    """
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise DatasetError(
            f"frames have shape {frames.shape} and dtype {frames.dtype}; expected (n, H, W, 3) uint8 RGB"
        )
    top, bottom, left, right = config.crop
    h, w = frames.shape[1], frames.shape[2]
    if top + bottom >= h or left + right >= w:
        raise DatasetError(
            f"crop {config.crop} removes the whole {h}x{w} frame; use a smaller --crop"
        )
    frames = frames[:, top : h - bottom, left : w - right]
    x = torch.from_numpy(frames.astype(np.float32))  # (n, h, w, 3), a writable copy
    # (n, h, w, 3) -> (n, C, h, w)
    x = (x @ _LUMA).unsqueeze(1) if config.grayscale else x.permute(0, 3, 1, 2)
    if x.shape[-2:] != (config.height, config.width):
        x = F.interpolate(x, size=(config.height, config.width), mode="area")
    return x.round_().clamp_(0, 255).to(torch.uint8).contiguous().numpy()
