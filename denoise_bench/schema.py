"""What the rows of a run folder's CSV files hold, and the columns that identify a row.

``records.csv`` has one row per evaluated image and repeat, ``jobs.csv`` one per job of the grid
(done, failed or skipped), ``curves.csv`` one per learning-curve point. A job is one (method,
dataset, training noise, seed); everything that merges, resumes or de-duplicates rows keys them by
the columns below, so they are named once, here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

BUILTIN_METRICS = ("psnr", "ssim")  # the metrics whose record and curve columns are written out below
JOB_KEY = ["method", "dataset", "train_noise", "seed"]  # one job of the grid
RECORD_KEY = JOB_KEY + ["test_noise", "image", "repeat"]  # one record of a job
CURVE_KEY = JOB_KEY + ["test_noise", "step"]  # one learning-curve point

RECORD_COLUMNS = ["run_id", "protocol", "profile", "method", "supervision", "uses_noise_level", "train_noise", "test_noise",
                  "dataset", "image", "repeat", "seed", "noise_seed", "noise_level", "psnr", "ssim", "input_psnr",
                  "input_ssim", "seconds", "train_seconds", "iterations", "noise_policy", "device",
                  # What tells experiments of one method apart (denoise_bench.experiment).
                  "method_options", "training_set",
                  # What makes the dataset that set of test images (RunData.test_digest).
                  "dataset_digest",
                  # The floor: a 3x3 box filter of the noisy input, scored like an estimate.
                  "floor_psnr", "floor_ssim"]
# Records of results format 1 may lack the last five: denoise_bench.migration fills them in when they are read.
# Columns of names: read back as text even where every name looks like a number (Set12's "01"), or a
# folder holding only such names would neither pair with nor de-duplicate against any other folder.
TEXT_COLUMNS = ("run_id", "method", "dataset", "image", "train_noise", "test_noise", "training_set", "dataset_digest")
JOB_COLUMNS = JOB_KEY + ["supervision", "uses_noise_level", "status", "error", "seconds", "traceback"]
# floor_psnr: the floor (box3 of the input) on the same images as the point (unknown in format 1's older curves);
# input_psnr: the noisy input's; output_std, residual_ratio: denoise_bench.diagnostics (the last three unknown,
# empty, in curves made before they were recorded).
CURVE_COLUMNS = CURVE_KEY + ["train_seconds", "psnr", "ssim", "records", "floor_psnr", "input_psnr", "output_std",
                             "residual_ratio"]

JobKey = tuple[str, str, str, int]


def job_key(row: Mapping[str, Any]) -> JobKey:
    """The job a record, job or curve row belongs to (the seed as an int: CSV rows read it back as a float or int)."""
    return (row["method"], row["dataset"], row["train_noise"], int(row["seed"]))
