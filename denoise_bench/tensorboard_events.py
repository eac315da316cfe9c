"""TensorBoard event files of a run (``bench run --tensorboard``): the switch and where the files go.

The events are written by the built-in tracker ``denoise_bench.trackers.tensorboard``, a plugin of the
lifecycle hooks; this core module holds what the rest of the core needs of it without importing a
plugin: the check that the package is installed (planning), and the folder of each job.

Each job (method x dataset x training noise x seed) gets a folder ``RUN_DIR/tensorboard/<job>/``
(:func:`job_folder`) with the scalars

* ``train/loss`` and ``train/lr`` at the steps the training reports (``hookspecs.training_step``).
  A training that serves several datasets (BSD68 and Set12 both train on Train400) is written into
  the folder of each, so that every folder tells its job's whole story;
* ``curve/<metric>/<test noise>`` (``curve/psnr/...``, ``curve/ssim/...``, one per registered metric,
  ``denoise_bench.metric``) at each learning-curve step (``--eval-every``);
* ``final/<metric>/<test noise>``: the job's mean over its records, as ``records.csv`` and the tables
  have it, at its last training step (0 for per-image methods).

``tensorboard --logdir RUN_DIR/tensorboard`` shows them. Writing needs the ``tensorboard`` package
(``pip install 'denoise-bench[tensorboard]'``); planning a run that asks for it without the package
fails at once (:func:`require_tensorboard`), before anything is downloaded or trained.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from denoise_bench.errors import BenchError
from denoise_bench.results import file_slug

TENSORBOARD = "tensorboard"  # the folder under a run folder
INSTALL = "pip install 'denoise-bench[tensorboard]'"


def require_tensorboard() -> None:
    """Raise a one-line BenchError naming the install command if the tensorboard package is missing."""
    try:
        import tensorboard  # noqa: F401  (torch.utils.tensorboard writes through it)
    except ImportError:
        raise BenchError(f"--tensorboard needs the tensorboard package: {INSTALL}") from None


def job_folder(run_dir: Path, job: dict[str, Any]) -> Path:
    """The event folder of a job (any row naming its method, dataset, training noise and seed)."""
    name = "__".join(file_slug(str(job[key])) for key in ("method", "dataset", "train_noise"))
    return run_dir / TENSORBOARD / f"{name}__seed{int(job['seed'])}"
