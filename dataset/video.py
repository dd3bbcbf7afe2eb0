"""Episode files as videos: an mp4 (H.264) or a GIF per episode, streamed chunk by chunk.

Backs ``sonic-rec export video``. Every stored observation becomes one video frame
(N+1 frames for N steps), played at the recorded rate: the emulator's 60 frames/s
divided by the episode's frame skip (one observation every ``frame_skip`` emulated
frames), unless the caller gives another rate.

Encoding goes through PyAV (FFmpeg's libraries, bundled in its wheels: no system
ffmpeg needed, frames go from numpy to the encoder in-process):

* mp4: H.264 (libx264), yuv420p so every player and browser plays it, CRF 18
  (visually lossless for pixel art); an odd width or height is padded by one black
  row/column, as yuv420p needs even sizes.
* GIF: one palette for the episode (:class:`_Palette`), exact when the episode has
  at most 256 colours, which a console episode usually has, so the GIF is
  lossless; otherwise reduced by median cut. GIF delays are whole 1/100 s, so
  15 frames/s plays at 100/6 = 16.7 frames/s.

Memory stays bounded however long the episode: frames are read one stored chunk
at a time (``EpisodeReader.iter_frame_chunks``) and handed to the encoder. The
video is written under a temporary name and renamed into place when complete
(``dataset.atomic``), like every file the project writes.

The overlay (``overlay=True``) draws, in a box at the top left, the step, its
reward, the return so far and the buttons held during the step (any frame of
it; names from the file's ``button_names``), plus the action's name when a policy
chose it. Observation 0 shows step 0, before any input. Only the box's pixels
change: it is darkened and the text drawn in white without anti-aliasing, which
also keeps a GIF's palette exact.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from dataset.atomic import commit, temp_path_for
from dataset.episode import EpisodeReader
from dataset.errors import UsageError

__all__ = [
    "EMULATOR_FPS",
    "Overlay",
    "VideoFormat",
    "VideoOptions",
    "VideoResult",
    "default_fps",
    "video_targets",
    "write_video",
]

#: Emulated frames per second the default rate assumes (stable-retro and BizHawk's NTSC Genesis: ~60).
EMULATOR_FPS = 60

#: x264 constant rate factor: 18 is visually lossless for 320x224 pixel art at a few hundred kB/min.
_CRF = 18
#: Brightness kept under the overlay's box (the game stays visible behind the text).
_BOX_SHADE = 0.35
_BOX_PAD = 3


class VideoFormat(enum.StrEnum):
    MP4 = "mp4"
    GIF = "gif"

    @property
    def suffix(self) -> str:
        return f".{self.value}"


@dataclass(frozen=True)
class VideoOptions:
    format: VideoFormat = VideoFormat.MP4
    #: Frames per second; None: the recorded rate, 60 / frame skip.
    fps: float | None = None
    overlay: bool = False


@dataclass(frozen=True)
class VideoResult:
    path: Path
    frames: int
    fps: Fraction

    @property
    def seconds(self) -> float:
        return float(self.frames / self.fps)


def default_fps(frame_skip: int) -> Fraction:
    """The recorded rate: one observation every ``frame_skip`` emulated frames at 60 frames/s."""
    return Fraction(EMULATOR_FPS, max(1, int(frame_skip)))


def video_targets(
    episodes: Sequence[Path], out: Path | None, fmt: str | None = None
) -> list[tuple[Path, Path, VideoFormat]]:
    """(episode, video path, format) for each episode, as ``sonic-rec export video`` names them.

    ``out`` is a video file (``.mp4``/``.gif``: its suffix picks the format; one episode
    only) or a folder (each video is named after its episode; default: the episode's
    own folder). ``fmt`` picks the format otherwise (default mp4).
    """
    chosen = VideoFormat(fmt) if fmt else None
    if out is not None and out.suffix.lower() in {f.suffix for f in VideoFormat}:
        named = VideoFormat(out.suffix.lower()[1:])
        if chosen is not None and chosen is not named:
            raise UsageError(f"--format {chosen} contradicts --out {out}; drop one of them")
        if len(episodes) != 1:
            raise UsageError(
                f"--out {out} names one video but {len(episodes)} episodes were given; pass a folder to --out"
            )
        return [(episodes[0], out, named)]
    if out is not None and out.suffix and not out.is_dir():
        raise UsageError(f"--out {out}: name a .mp4 or .gif file, or a folder for the videos")
    fmt_ = chosen or VideoFormat.MP4
    return [(ep, (out or ep.parent) / (ep.stem + fmt_.suffix), fmt_) for ep in episodes]


def _rate(fps: float | None, frame_skip: int) -> Fraction:
    if fps is None:
        return default_fps(frame_skip)
    if not 0 < fps <= 1000:
        raise UsageError(f"--fps {fps} must be above 0 and at most 1000")
    return Fraction(fps).limit_denominator(1001)


class Overlay:
    """Per-observation text (step, reward, return, buttons) drawn into a fixed box at the top left."""

    def __init__(self, ep: EpisodeReader) -> None:
        from PIL import ImageFont

        self._font = ImageFont.load_default()
        n = ep.n_steps
        rewards = ep.rewards().astype(np.float64)
        returns = np.concatenate([[0.0], np.cumsum(rewards)])
        buttons = ep.buttons()
        held = np.bitwise_or.reduce(buttons, axis=1) if buttons.size else np.zeros(n, np.uint32)
        names = ep.meta.button_names
        actions = ep.actions()
        action_names = ep.meta.action_names
        self._lines: list[tuple[str, str, str]] = [(f"step 0/{n}", "reward -  return 0", "buttons -")]
        for i in range(n):
            mask = int(held[i])
            pressed = " ".join(name for b, name in enumerate(names) if mask >> b & 1) or "-"
            a = int(actions[i])
            chosen = f" [{action_names[a]}]" if 0 <= a < len(action_names) else ""
            self._lines.append((
                f"step {i + 1}/{n}",
                f"reward {rewards[i]:+.4g}  return {returns[i + 1]:.6g}",
                f"buttons {pressed}{chosen}",
            ))
        # One box size for the whole episode (no jitter): that of the widest text of each line.
        widest = "\n".join(max((lines[k] for lines in self._lines), key=len) for k in range(3))
        self._width, self._height = self._text_size(widest)

    def _text_size(self, text: str) -> tuple[int, int]:
        from PIL import Image, ImageDraw

        box = ImageDraw.Draw(Image.new("1", (1, 1))).multiline_textbbox((0, 0), text, font=self._font)
        return int(box[2]) + 2 * _BOX_PAD, int(box[3]) + 2 * _BOX_PAD

    def box(self, frame_shape: tuple[int, ...]) -> tuple[int, int]:
        """(height, width) of the box the overlay changes, clipped to the frame."""
        return min(self._height, int(frame_shape[0])), min(self._width, int(frame_shape[1]))

    def text(self, observation: int) -> str:
        return "\n".join(self._lines[observation])

    def draw(self, frame: np.ndarray, observation: int) -> np.ndarray:
        """A copy of ``frame`` with observation ``observation``'s text; only the box's pixels differ."""
        from PIL import Image, ImageDraw

        h, w = self.box(frame.shape)
        mask_image = Image.new("1", (self._width, self._height))
        draw = ImageDraw.Draw(mask_image)
        draw.fontmode = "1"  # no anti-aliasing: crisp pixel text, and few new colours for a GIF palette
        draw.multiline_text((_BOX_PAD, _BOX_PAD), self.text(observation), fill=1, font=self._font)
        mask = np.asarray(mask_image, dtype=bool)[:h, :w]
        out = frame.copy()
        region = out[:h, :w]
        region[:] = self.shade(region)
        region[mask] = 255
        return out

    @staticmethod
    def shade(rgb: np.ndarray) -> np.ndarray:
        """The box's darkening of colours ``rgb`` (uint8, last axis RGB)."""
        return (rgb * _BOX_SHADE).astype(np.uint8)


def _pack(frames: np.ndarray) -> np.ndarray:
    """RGB pixels as 24-bit integers 0xRRGGBB."""
    return (frames[..., 0].astype(np.uint32) << 16) | (frames[..., 1].astype(np.uint32) << 8) | frames[..., 2]


class _Palette:
    """One palette for a whole GIF, and the lookup table from 0xRRGGBB to its index.

    FFmpeg's GIF encoder stores only what changed since the previous frame, found by
    comparing palette *indices*, so the palette must not change between frames. A first
    pass over the episode (one chunk in memory at a time) collects every colour,
    the overlay's included. A console episode has few (Airstriker: 12; the Genesis
    can show 512 in all): up to 256 the GIF is exact. Past that, the colours are
    reduced to 256 by median cut and each is drawn as its nearest palette entry.
    """

    def __init__(self, ep: EpisodeReader, overlay: Overlay | None) -> None:
        seen = np.zeros(1 << 24, dtype=bool)
        for _, chunk in ep.iter_frame_chunks():
            seen[_pack(chunk).reshape(-1)] = True
        colors = np.flatnonzero(seen).astype(np.uint32)
        if overlay is not None:
            rgb = np.stack([colors >> 16, (colors >> 8) & 0xFF, colors & 0xFF], axis=-1).astype(np.uint8)
            shaded = _pack(overlay.shade(rgb))
            colors = np.union1d(colors, np.append(shaded, np.uint32(0xFFFFFF)))
        self.lut = np.zeros(1 << 24, dtype=np.uint8)
        if len(colors) <= 256:
            palette_colors = colors
            self.lut[colors] = np.arange(len(colors), dtype=np.uint8)
        else:
            palette_colors = self._median_cut(colors)
            self.lut[colors] = self._nearest(colors, palette_colors)
        self.exact = len(colors) <= 256
        self.palette = np.zeros((256, 4), dtype=np.uint8)  # ARGB, as PyAV's pal8 frames take it
        k = len(palette_colors)
        self.palette[:k, 0] = 255
        self.palette[:k, 1] = palette_colors >> 16
        self.palette[:k, 2] = (palette_colors >> 8) & 0xFF
        self.palette[:k, 3] = palette_colors & 0xFF

    @staticmethod
    def _median_cut(colors: np.ndarray) -> np.ndarray:
        from PIL import Image

        rgb = np.stack([colors >> 16, (colors >> 8) & 0xFF, colors & 0xFF], axis=-1).astype(np.uint8)
        image = Image.fromarray(rgb[None, :, :]).quantize(256, method=Image.Quantize.MEDIANCUT)
        used = np.unique(np.asarray(image))
        table = np.frombuffer(bytes(image.getpalette() or b""), dtype=np.uint8).reshape(-1, 3)[used]
        return np.unique(_pack(table))

    @staticmethod
    def _nearest(colors: np.ndarray, palette: np.ndarray) -> np.ndarray:
        def split(c: np.ndarray) -> np.ndarray:
            return np.stack([c >> 16, (c >> 8) & 0xFF, c & 0xFF], axis=-1).astype(np.int32)

        targets = split(palette)
        out = np.empty(len(colors), dtype=np.uint8)
        for i in range(0, len(colors), 4096):  # bounded memory: 4096 x 256 distances at a time
            block = split(colors[i : i + 4096])
            out[i : i + 4096] = ((block[:, None, :] - targets[None, :, :]) ** 2).sum(axis=2).argmin(axis=1)
        return out

    def frame(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(indices, palette) of one frame, for ``av.VideoFrame.from_ndarray(..., format="pal8")``."""
        return self.lut[_pack(rgb)], self.palette


def write_video(
    episode: Path,
    out: Path,
    options: VideoOptions = VideoOptions(),
    progress: Callable[[int], None] | None = None,
) -> VideoResult:
    """Encode ``episode``'s frames into ``out`` (an mp4 or a GIF); ``progress(n)`` after every n frames."""
    import av

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    temp = temp_path_for(out)
    fmt = VideoFormat(options.format)
    with EpisodeReader(episode) as ep:
        rate = _rate(options.fps, ep.meta.frame_skip)
        overlay = Overlay(ep) if options.overlay else None
        palette = _Palette(ep, overlay) if fmt is VideoFormat.GIF else None
        height, width = ep.frame_shape[0], ep.frame_shape[1]
        if fmt is VideoFormat.MP4:
            height, width = height + height % 2, width + width % 2  # yuv420p needs even sizes
        frames = 0
        try:
            with av.open(str(temp), "w", format=fmt.value) as container:
                if fmt is VideoFormat.MP4:
                    stream = container.add_stream("libx264", rate=rate, options={"crf": str(_CRF)})
                    stream.pix_fmt = "yuv420p"
                else:
                    stream = container.add_stream("gif", rate=rate)
                    stream.pix_fmt = "pal8"
                stream.width, stream.height = width, height
                time_base = 1 / rate
                for first, chunk in ep.iter_frame_chunks():
                    for j, frame in enumerate(chunk):
                        if overlay is not None:
                            frame = overlay.draw(frame, first + j)
                        if frame.shape[:2] != (height, width):
                            frame = np.pad(frame, ((0, height - frame.shape[0]), (0, width - frame.shape[1]), (0, 0)))
                        if palette is not None:
                            vframe = av.VideoFrame.from_ndarray(palette.frame(frame), format="pal8")
                        else:
                            vframe = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
                        vframe.pts = first + j
                        vframe.time_base = time_base
                        container.mux(stream.encode(vframe))
                    frames += len(chunk)
                    if progress is not None:
                        progress(len(chunk))
                container.mux(stream.encode(None))
            commit(temp, out)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
    return VideoResult(out, frames, rate)
