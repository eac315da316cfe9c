"""Saving and loading checkpoints: atomically, and without ever unpickling arbitrary objects.

``torch.load(weights_only=True)`` only rebuilds tensors and plain containers, so a checkpoint from an
untrusted source cannot run code. Saves go to a temporary file in the same folder and are renamed
into place, so a kill at any moment leaves the old file or the new one, never half of one.
"""

from __future__ import annotations

import io
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from denoise_bench.atomic import replacing
from denoise_bench.errors import BenchError


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    # Serialised in memory first, then written by Python: a full disk is then an OSError (ENOSPC) naming the file,
    # which stops the run (denoise_bench.atomic). Written by torch.save, even through a Python file, the failed
    # write comes back as torch's RuntimeError "enforce fail ... unexpected pos", failing one job as if it were its bug.
    try:
        buffer = io.BytesIO()
        torch.save(state, buffer)
        with replacing(path) as tmp, tmp.open("wb") as handle:
            handle.write(buffer.getbuffer())
    except OSError as exc:
        if exc.filename is not None:
            raise
        # An error that names no file (raised while serialising) is reported as this checkpoint's.
        raise OSError(exc.errno, exc.strerror, str(path)) from exc


def load_checkpoint(path: Path, map_location: torch.device | str = "cpu") -> dict[str, Any]:
    """Load a checkpoint of tensors and plain Python values; refuse anything else."""
    if not path.is_file():
        raise BenchError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        # Name what was refused, not torch's advice to retry with weights_only=False (that would run the code).
        found = re.search(r"(GLOBAL|Unsupported global:?) (\S+)", str(exc))
        what = f"it references {found.group(2)}" if found else "it holds Python objects other than tensors"
        raise BenchError(f"{path}: refusing to load, it is not a plain weights checkpoint ({what}; "
                         "denoise-bench never unpickles objects, so a file from elsewhere cannot run code)") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise BenchError(f"{path}: not a readable checkpoint ({exc})") from None
    if not isinstance(state, dict):
        raise BenchError(f"{path}: not a denoise-bench checkpoint (found {type(state).__name__})")
    return state
