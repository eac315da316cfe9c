"""Files the suite writes get the permissions the umask gives any new file (checkpoints and .safetensors
exports were readable by their owner only), and are still replaced atomically."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from denoise_bench.atomic import replacing, write_text_atomic
from denoise_bench.checkpoints import save_checkpoint
from denoise_bench.models.trained import ABOUT, export_safetensors, load_safetensors


@pytest.fixture
def umask_027() -> Iterator[int]:
    """A umask other than the usual 022, so that a fixed 0644 would show as wrong too."""
    before = os.umask(0o027)
    try:
        yield 0o640
    finally:
        os.umask(before)


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_checkpoints_exports_and_tables_get_the_umask_permissions(tmp_path: Path, umask_027: int) -> None:
    save_checkpoint({"w": torch.zeros(2)}, tmp_path / "model.pt")
    state = {ABOUT: {"method": "unet"}, "net": {"w": torch.ones(3)}, "steps": 4}
    export_safetensors(tmp_path / "unused.pt", tmp_path / "model.safetensors", state)
    write_text_atomic(tmp_path / "table.md", "| a |\n")
    assert {p.name: _mode(p) for p in tmp_path.iterdir()} == {
        "model.pt": umask_027, "model.safetensors": umask_027, "table.md": umask_027}
    assert torch.equal(load_safetensors(tmp_path / "model.safetensors")["net"]["w"], torch.ones(3))


def test_a_failed_write_leaves_the_old_file_and_no_temporary_one(tmp_path: Path) -> None:
    target = tmp_path / "records.csv"
    target.write_text("old\n")
    with pytest.raises(RuntimeError), replacing(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old\n" and sorted(p.name for p in tmp_path.iterdir()) == ["records.csv"]
