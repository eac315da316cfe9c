"""The evaluation protocol: an explicit, versioned object recorded in every result row.

Most "cannot reproduce the paper" reports in this field come from evaluation differences (8-bit or
float PSNR, clipping, colour handling, padding, repeats), so every choice is a field here and the
protocol's id (``name-vN``) is written next to each number. Change a field's meaning -> bump the
version.

``paper`` is how the IDDP paper's numbers were most likely scored: its first author's evaluation
script (Noise2Grad, ``psnr_and_ssim.py``) reads 8-bit PNGs with OpenCV, converts both images with
``cv2.cvtColor(..., COLOR_BGR2YCR_CB)`` and scores the Y channel only: full-range BT.601 luma rounded
to 8 bits (:func:`to_luma`), PSNR with peak 255. Everything else is ``nb2nb``'s, so the two protocols
draw the same noise and differ only on colour images. The script's SSIM (scikit-image's
``compare_ssim`` defaults: a 7x7 uniform window, sample covariance) is not reproduced: ``paper``
keeps ``nb2nb``'s 11x11 Gaussian window, so its PSNR is the script's and its SSIM close to it.
"""

from __future__ import annotations

import hashlib
import reprlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Literal

import torch
import torch.nn.functional as F

from denoise_bench.errors import BenchError
from denoise_bench.global_state import who_of
from denoise_bench.metrics import PSNR, SSIM

if TYPE_CHECKING:
    from denoise_bench.metric import Metric


@dataclass(frozen=True)
class EvalProtocol:
    name: str
    version: int
    description: str
    clip: bool = True  # clamp the estimate to [0, 1] before scoring
    quantize_8bit: bool = True  # score uint8(clip(255 p + 0.5)) against the 8-bit original
    color: Literal["rgb", "y"] = "rgb"  # all channels, or BT.601 luma of colour images (see to_luma)
    padding: Literal["reflect-square", "reflect-multiple"] = "reflect-square"
    repeats: tuple[tuple[str, int], ...] = ()  # noisy draws per test image, by dataset name
    default_repeats: int = 1
    seed: int = 101  # test-noise seed; per (dataset, image, setting, repeat) seeds derive from it
    ssim_window: int = 11
    ssim_sigma: float = 1.5

    @property
    def id(self) -> str:
        return f"{self.name}-v{self.version}"

    def as_dict(self) -> dict:
        return asdict(self) | {"id": self.id}

    def repeats_for(self, dataset: str) -> int:
        return dict(self.repeats).get(dataset, self.default_repeats)

    def with_repeats(self, repeats: int | None) -> "EvalProtocol":
        """This protocol with ``repeats`` noise draws of every test image (``--repeats``), whatever the set's
        name; itself for None. Its draws are its own (repeat r of an image is the same draw under any count),
        so the id is kept: records of the draws both made are the same records."""
        return self if repeats is None else replace(self, repeats=(), default_repeats=repeats)

    def repeats_text(self, repeats: int | None = None) -> str:
        """How many noise draws of each test image this protocol scores, and by which rule: ``repeats`` given
        (``--repeats``), else its rule by set name, which a folder holding one of those sets does not meet."""
        if repeats is not None:
            return f"{repeats} per test image of every set (--repeats {repeats})"
        named = ", ".join(f"{name} x{count}" for name, count in self.repeats)
        return (f"protocol {self.id}'s rule by set name: {named}, any other set (a folder too) x{self.default_repeats}"
                if named else f"{self.default_repeats} per test image (protocol {self.id})") + "; --repeats N to choose"

    def noise_seed(self, dataset: str, image_id: str, setting: str, repeat: int) -> int:
        """A seed that depends only on what is evaluated, never on run order or method."""
        key = f"{self.seed}|{dataset}|{image_id}|{setting}|{repeat}".encode()
        return int.from_bytes(hashlib.sha256(key).digest()[:8], "little") & ((1 << 63) - 1)

    # --- padding ---------------------------------------------------------------------------------

    def pad(self, image: torch.Tensor, multiple: int, square: bool = False) -> torch.Tensor:
        """Reflect-pad a (1, C, H, W) image at the bottom/right so the method can take it: each side to
        the next multiple of ``multiple``, or, under ``padding="reflect-square"`` for a method that
        declares the square convention (``Method.pads_to_square``, the built-in networks'), both sides
        to the next multiple of the longer one.

        Always a new tensor, never ``image`` itself: it is the method's own input, which the method may
        edit in place without changing what the next method is given or what the input is scored as.
        """
        if multiple <= 1:
            return image.clone()
        h, w = image.shape[-2:]
        if square and self.padding == "reflect-square":
            side = -(-max(h, w) // multiple) * multiple
            target_h, target_w = side, side
        else:
            target_h, target_w = -(-h // multiple) * multiple, -(-w // multiple) * multiple
        padded = reflect_pad(image, target_h - h, target_w - w)
        return padded.clone() if padded is image else padded

    def unscorable(self, height: int, width: int) -> str | None:
        """Why this protocol cannot score an image of ``height`` x ``width`` pixels (None when it can):
        SSIM needs its window inside the image."""
        if min(height, width) < self.ssim_window:
            return (f"protocol {self.id} scores images of at least {self.ssim_window}x{self.ssim_window} pixels "
                    "(its SSIM window)")
        return None

    # --- scoring ---------------------------------------------------------------------------------

    def prepared(self, estimate: torch.Tensor, clean_u8: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A (C, H, W) float estimate and its (C, H, W) uint8 original as every metric scores them
        (``denoise_bench.metric``): float64 on the 0-255 scale, the estimate clamped and quantised as
        this protocol says, colour images reduced to luma under a luma protocol."""
        ref = clean_u8.double()
        est = estimate.double()
        if self.clip:
            est = est.clamp(0.0, 1.0)
        est = est * 255.0
        if self.quantize_8bit:
            est = torch.floor(est + 0.5).clamp(0.0, 255.0)
        if self.color == "y" and est.shape[0] == 3:
            est, ref = to_luma(est, self.quantize_8bit), to_luma(ref, self.quantize_8bit)
        return est, ref

    def scores(self, estimate: torch.Tensor, clean_u8: torch.Tensor, metrics: Sequence[Metric]) -> dict[str, float]:
        """Metric name -> score of a (C, H, W) float estimate against the (C, H, W) uint8 original."""
        est, ref = self.prepared(estimate, clean_u8)
        return {metric.name: _number(metric, metric.compute(est, ref, self)) for metric in metrics}

    def score(self, estimate: torch.Tensor, clean_u8: torch.Tensor) -> tuple[float, float]:
        """(PSNR, SSIM) of a (C, H, W) float estimate against the (C, H, W) uint8 original."""
        scores = self.scores(estimate, clean_u8, (PSNR, SSIM))
        return scores["psnr"], scores["ssim"]

    def scores_like(self, other: "EvalProtocol", colour: bool) -> bool:
        """Whether ``other`` gives the same score as this protocol to the same estimate of a colour
        (``colour``) or gray image: the same clipping, quantisation and SSIM window, and, for colour
        images, the same channels scored. Padding, repeats and the seed change which noisy draws are
        scored, not how one is scored."""
        fields = ["clip", "quantize_8bit", "ssim_window", "ssim_sigma"] + (["color"] if colour else [])
        return all(getattr(self, f) == getattr(other, f) for f in fields)


# OpenCV's 8-bit RGB -> YCrCb luma (COLOR_BGR2YCrCb on uint8): 0.299, 0.587, 0.114 in 14-bit fixed
# point, rounded. Checked against cv2 4.14 on all 2^24 colours: identical.
LUMA_FIXED_POINT = (4899, 9617, 1868)
LUMA_SHIFT = 14


def to_luma(rgb: torch.Tensor, quantize_8bit: bool = False) -> torch.Tensor:
    """BT.601 luma ``0.299 R + 0.587 G + 0.114 B`` of a (3, H, W) image on the 0-255 scale, full range
    (no offset of 16, no 219/255 scaling: not MATLAB's ``rgb2ycbcr``). With ``quantize_8bit`` the
    values are 8-bit integers and so is the luma, exactly as OpenCV's ``cvtColor(..., COLOR_BGR2YCrCb)``
    rounds it, which the IDDP authors' evaluation script scores (Noise2Grad ``psnr_and_ssim.py``)."""
    if quantize_8bit:
        weights = torch.tensor(LUMA_FIXED_POINT, dtype=rgb.dtype, device=rgb.device).view(3, 1, 1)
        scaled = (rgb * weights).sum(dim=0, keepdim=True) + (1 << (LUMA_SHIFT - 1))
        return torch.floor(scaled / (1 << LUMA_SHIFT))
    weights = torch.tensor([0.299, 0.587, 0.114], dtype=rgb.dtype, device=rgb.device).view(3, 1, 1)
    return (rgb * weights).sum(dim=0, keepdim=True)


def reflect_pad(image: torch.Tensor, pad_h: int, pad_w: int) -> torch.Tensor:
    """Reflect padding that also works when the pad exceeds the image side (repeated reflection).

    A side of one pixel has nothing to reflect: padding it is a BenchError (it would never grow)."""
    h, w = image.shape[-2:]
    if (pad_h > 0 and h < 2) or (pad_w > 0 and w < 2):
        raise BenchError(f"a {h}x{w} image cannot be reflect-padded to {h + max(pad_h, 0)}x{w + max(pad_w, 0)}: "
                         "a side of 1 pixel has nothing to reflect")
    while pad_h > 0 or pad_w > 0:
        step_h = min(pad_h, image.shape[-2] - 1)
        step_w = min(pad_w, image.shape[-1] - 1)
        image = F.pad(image, (0, step_w, 0, step_h), mode="reflect")
        pad_h -= step_h
        pad_w -= step_w
    return image


NB2NB = EvalProtocol(
    name="nb2nb",
    version=1,
    description="Neighbor2Neighbor/Blind2Unblind evaluator: clamp, 8-bit, RGB, reflect to a square multiple of 32, "
    "Kodak x10 / BSD300 x3 / Set14 x20 repeats, seed 101, SSIM 11x11 Gaussian sigma 1.5",
    repeats=(("kodak24", 10), ("bsd300", 3), ("set14", 20)),
)
FLOAT = EvalProtocol(
    name="float",
    version=1,
    description="float PSNR/SSIM on the clamped estimate (DIP notebook style), one draw per image",
    quantize_8bit=False,
    padding="reflect-multiple",
)
PAPER = replace(
    NB2NB,
    name="paper",
    version=1,
    description="the IDDP paper's scoring (its first author's script, Noise2Grad psnr_and_ssim.py): nb2nb-v1 "
    "(same clamp, 8-bit, padding, repeats, seed and noise draws, same SSIM window) but colour images scored on "
    "8-bit BT.601 luma, Y = 0.299 R + 0.587 G + 0.114 B on 0-255 rounded as OpenCV's COLOR_BGR2YCrCb rounds it "
    "(full range, no +16 offset, not MATLAB's rgb2ycbcr); gray images scored as nb2nb-v1",
    color="y",
)
PROTOCOLS = {p.name: p for p in (NB2NB, FLOAT, PAPER)}


def _number(metric: Metric, value: object) -> float:
    """A metric's score as a float, or a BenchError naming the metric (and its plugin) that gave something else:
    the job it fails must not read as its method's."""
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, RuntimeError):  # RuntimeError: a tensor of several values
        raise BenchError(f"{who_of(metric.compute, f'metric {metric.name!r}')} returned {reprlib.repr(value)} "
                         f"({type(value).__name__}), not a number") from None


def protocol_by_id(protocol_id: str) -> EvalProtocol | None:
    """The protocol a record names (``nb2nb-v1``), or None for one this version does not define."""
    return next((p for p in PROTOCOLS.values() if p.id == protocol_id), None)


def get_protocol(name: str) -> EvalProtocol:
    if name not in PROTOCOLS:
        raise BenchError(f"unknown protocol {name!r}; valid protocols: {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]
