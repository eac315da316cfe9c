"""Inputs that used to give a silently wrong answer are refused, each with a message saying why:
16-bit images (gray and colour alike), plugin names that are no names, and budgets that cannot fit."""

from __future__ import annotations

import dataclasses
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from denoise_bench import hookimpl, plugins
from denoise_bench.cli.commands import main
from denoise_bench.errors import BenchError
from denoise_bench.images import read_image
from denoise_bench.plugins import get_registry
from helpers import SALT, Median3, MethodPlugin


def _png16(path: Path, pixels: np.ndarray) -> None:
    """A 16-bit PNG, gray (H, W) or colour (H, W, 3), written by hand (Pillow writes no 16-bit colour)."""
    big_endian = np.asarray(pixels, dtype=">u2")
    h, w = big_endian.shape[:2]
    rows = b"".join(b"\x00" + big_endian[y].tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", w, h, 16, 2 if big_endian.ndim == 3 else 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
                     + chunk(b"IEND", b""))


def _tiff16(path: Path, pixels: np.ndarray) -> None:
    import tifffile

    tifffile.imwrite(path, pixels.astype(np.uint16))


def _pnm16(path: Path, pixels: np.ndarray) -> None:
    h, w = pixels.shape[:2]
    magic = b"P6" if pixels.ndim == 3 else b"P5"
    path.write_bytes(magic + f"\n{w} {h}\n65535\n".encode() + pixels.astype(">u2").tobytes())


@pytest.mark.parametrize("colour", [False, True], ids=["gray", "colour"])
@pytest.mark.parametrize("write,suffix", [(_png16, ".png"), (_tiff16, ".tif"), (_pnm16, ".ppm")],
                         ids=["png", "tiff", "pgm-ppm"])
def test_16_bit_images_are_refused_alike_gray_or_colour(tmp_path: Path, write, suffix: str, colour: bool) -> None:
    """Pillow opens 16-bit colour as 8-bit and 16-bit gray as 16-bit: neither is cut to 8 bits without a word."""
    pixels = (np.random.default_rng(0).random((8, 8, 3) if colour else (8, 8)) * 65535).astype(np.uint16)
    path = tmp_path / f"image{suffix}"
    write(path, pixels)
    for channels in (1, 3):
        with pytest.raises(BenchError, match=f"{path.name}: a 16-bit image; denoise-bench reads 8-bit images only"):
            read_image(path, channels)


class Escaping(Median3):
    name = "../../x"


@pytest.mark.parametrize("kind,bad_name", [("method", "../../x"), ("method", "a,b"), ("method", "mine__v2"),
                                           ("dataset", "../set"), ("noise model", "salt:p")])
def test_a_plugin_registering_a_name_that_is_no_name_is_skipped_saying_why(kind: str, bad_name: str) -> None:
    skimage = get_registry().dataset("skimage")

    class Plugin:
        @hookimpl
        def register_methods(self, register):
            register(type("Bad", (Median3,), {"name": bad_name}) if kind == "method" else Median3)

        @hookimpl
        def register_datasets(self, register):
            if kind == "dataset":
                register(type("BadSet", (skimage,), {"name": bad_name}))

        @hookimpl
        def register_noise_models(self, register):
            if kind == "noise model":
                register(dataclasses.replace(SALT, name=bad_name))

    plugins.register_plugin(Plugin(), name="badly-named")
    registry = get_registry()
    (failure,) = registry.failures
    assert failure.error.startswith(f"{kind} name {bad_name!r} is not a name")
    assert "median3" not in registry.methods  # the plugin is skipped whole


def test_a_method_named_to_escape_writes_nothing_outside_the_run_folder(tmp_path: Path) -> None:
    plugins.register_plugin(MethodPlugin(Escaping), name="escaping")
    out = tmp_path / "runs" / "run"
    result = CliRunner().invoke(main, ["run", "--methods", "../../x", "--noise", "gaussian:sigma=25", "--profile",
                                       "smoke", "--test-images", "1", "--no-progress", "--out", str(out)])
    assert result.exit_code == 2
    assert "method '../../x' was not loaded: plugin 'escaping' failed: method name '../../x' is not a name" in result.output
    assert sorted(p.name for p in tmp_path.rglob("*.png")) == []


@pytest.mark.parametrize("flags", [["--batch-size", "100000000"], ["--crop-size", "1000000"]])
def test_a_budget_that_cannot_fit_in_memory_is_refused_before_anything_runs(tmp_path: Path, flags: list[str]) -> None:
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["run", "--methods", "bm3d,n2n", "--noise", "gaussian:sigma=25", "--profile",
                                       "smoke", "--no-progress", "--out", str(out), *flags])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: n2n: a training step of batch ")
    assert "GiB, more than the " in result.output and "choose a smaller --batch-size or --crop-size" in result.output
    assert not out.exists()


def test_a_budget_that_fits_is_planned_as_before() -> None:
    result = CliRunner().invoke(main, ["run", "--methods", "n2n", "--profile", "smoke", "--batch-size", "64", "--dry-run"])
    assert result.exit_code == 0, result.output
