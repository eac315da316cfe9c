"""Run folders: per-image records, and the paper-style tables made from them.

Layout of a run folder::

    config.json        the resolved request (methods, noise, datasets, budget, protocol, seeds)
    environment.json   versions, device, git commit
    records.csv        one row per evaluated image (and repeat)
    jobs.csv           one row per (method, dataset, train noise, seed): done / failed / skipped, and why
    curves.csv         with --eval-every: mean test PSNR/SSIM at training steps (learning curves)
    checkpoints/       trained state of each job
    parts/<unit>/      records/jobs/curves of a job running under an executor (``--executor``); folded
                       into the files above when the grid completes or is resumed, and read with them
                       until then, so a grid whose jobs are still running can be tabulated
    tables/psnr.{csv,md}, tables/ssim.{csv,md}

Tables are laid out like the IDDP paper's Table 1: one block per (dataset, training noise), rows are
test settings, columns are methods, plus the noisy input for reference.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from denoise_bench.atomic import write_text_atomic
from denoise_bench.errors import BenchError
from denoise_bench.profiles import SHORT_BUDGET_WARNINGS

RESULTS_FORMAT = 1  # bump when the layout or meaning of a run folder changes
CONFIG = "config.json"
RECORDS = "records.csv"
JOBS = "jobs.csv"
CURVES = "curves.csv"  # learning curves: mean test PSNR/SSIM during training (runs with --eval-every)
PARTS = "parts"
TABLES = "tables"
NOISY_INPUT = "noisy input"
ORACLE_MARK = "†"  # methods told the true noise level
METRICS = {"psnr": 2, "ssim": 4}  # metric -> decimals shown


def file_slug(text: str) -> str:
    """A file or folder name for a method, dataset or noise spec: ``gaussian:sigma=25`` -> ``gaussian_sigma=25``."""
    return re.sub(r"[^A-Za-z0-9.=-]+", "_", text).strip("_")


def write_json(path: Path, data: dict) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def write_frame(path: Path, frame: pd.DataFrame) -> None:
    write_text_atomic(path, frame.to_csv(index=False))


def read_config(run_dir: Path) -> dict:
    """The run's config, refusing folders written by an incompatible version of denoise-bench."""
    path = run_dir / CONFIG
    if not path.is_file():
        raise BenchError(f"{run_dir} is not a run folder (no {CONFIG})")
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise BenchError(f"{path} is not valid JSON ({exc})") from None
    found = config.get("format_version") if isinstance(config, dict) else None
    if found != RESULTS_FORMAT:
        raise BenchError(f"{run_dir} was written by an incompatible version of denoise-bench "
                         f"(results format {found}, this version reads {RESULTS_FORMAT})")
    return config


def part_folders(run_dir: Path) -> list[Path]:
    """Folders of jobs written by separate processes (an executor), in a stable order."""
    parts = run_dir / PARTS
    return sorted(p for p in parts.iterdir() if p.is_dir()) if parts.is_dir() else []


def _read_frame(run_dir: Path, name: str) -> pd.DataFrame:
    """``name`` of the run folder with the same file of every part appended; empty if none exists."""
    paths = [path for path in [run_dir / name, *(part / name for part in part_folders(run_dir))] if path.is_file()]
    frames = [pd.read_csv(path) for path in paths]
    filled = [frame for frame in frames if not frame.empty]
    if filled:
        return pd.concat(filled, ignore_index=True)
    return frames[0] if frames else pd.DataFrame()  # keep the header of an empty file


def read_records(run_dir: Path) -> pd.DataFrame:
    read_config(run_dir)
    if not (run_dir / RECORDS).is_file() and not part_folders(run_dir):
        raise BenchError(f"{run_dir} is not a run folder (no {RECORDS})")
    return _read_frame(run_dir, RECORDS)


def read_curves(run_dir: Path) -> pd.DataFrame:
    return _read_frame(run_dir, CURVES)


def read_jobs(run_dir: Path) -> pd.DataFrame:
    return _read_frame(run_dir, JOBS)


def method_label(method: str, oracle: bool) -> str:
    return f"{method}{ORACLE_MARK}" if oracle else method


def build_tables(records: pd.DataFrame, jobs: pd.DataFrame, metric: str) -> dict[tuple[str, str], pd.DataFrame]:
    """(dataset, train noise) -> table of mean ``metric``: rows test settings, columns methods."""
    tables: dict[tuple[str, str], pd.DataFrame] = {}
    if records.empty and jobs.empty:
        return tables
    blocks = set(map(tuple, records[["dataset", "train_noise"]].drop_duplicates().values)) if not records.empty else set()
    if not jobs.empty:
        blocks |= set(map(tuple, jobs[["dataset", "train_noise"]].drop_duplicates().values))
    for dataset, train_noise in sorted(blocks):
        block = records[(records.dataset == dataset) & (records.train_noise == train_noise)] if not records.empty else records
        columns: dict[str, pd.Series] = {}
        order = list(dict.fromkeys(block["test_noise"])) if not block.empty else []
        if not block.empty:
            # Mean over images, repeats and seeds; the noisy input is the same for every method.
            columns[NOISY_INPUT] = block.groupby("test_noise", sort=False)[f"input_{metric}"].mean()
            for (method, oracle), rows in block.groupby(["method", "uses_noise_level"], sort=False):
                columns[method_label(method, bool(oracle))] = rows.groupby("test_noise", sort=False)[metric].mean()
        table = pd.DataFrame(columns, index=pd.Index(order, name="test noise")).round(METRICS[metric])
        table = table.astype(object)
        if not jobs.empty:
            # Failed or skipped jobs show as such instead of silently missing.
            sel = jobs[(jobs.dataset == dataset) & (jobs.train_noise == train_noise) & (jobs.status != "done")]
            for _, job in sel.iterrows():
                label = method_label(job["method"], bool(job.get("uses_noise_level", False)))
                if label not in table.columns:
                    table[label] = job["status"]
        tables[(dataset, train_noise)] = table
    return tables


def low_budget_warnings(records: pd.DataFrame) -> list[str]:
    """Why these numbers may not rank methods: a short-budget profile, or a trained method that scores
    below its own noisy input (under-trained or broken) on some test setting."""
    if records.empty:
        return []
    warnings = [SHORT_BUDGET_WARNINGS[p] for p in sorted(records["profile"].dropna().unique()) if p in SHORT_BUDGET_WARNINGS]
    trained = records[records["iterations"].fillna(0) > 0] if "iterations" in records else records.iloc[0:0]
    means = trained.groupby(["method", "dataset", "train_noise", "test_noise"], sort=False)[["psnr", "input_psnr"]].mean()
    for (method, dataset, _, test_noise), row in means[means.psnr < means.input_psnr].iterrows():
        warnings.append(f"{method} scores below its noisy input on {dataset}, {test_noise} "
                        f"({row.psnr:.2f} < {row.input_psnr:.2f} dB): under-trained or broken.")
    return warnings


def profiles_of(records: pd.DataFrame) -> str:
    return ", ".join(sorted(records["profile"].dropna().unique())) if not records.empty else "n/a"


def render_markdown(tables: dict[tuple[str, str], pd.DataFrame], metric: str, protocol: str, profile: str = "n/a",
                    warnings: list[str] | None = None) -> str:
    lines = [f"# {metric.upper()} (protocol {protocol}, profile {profile})", ""]
    lines += [f"> **Warning:** {text}" for text in warnings or []]
    if warnings:
        lines.append("")
    for (dataset, train_noise), table in tables.items():
        lines += [f"## {dataset}, trained on {train_noise}", "", table.to_markdown(), ""]
    lines.append(f"{ORACLE_MARK} told the true noise level of each test image. "
                 "Means over test images, noise repeats and seeds.")
    return "\n".join(lines) + "\n"


def tables_to_csv(tables: dict[tuple[str, str], pd.DataFrame]) -> pd.DataFrame:
    frames = []
    for (dataset, train_noise), table in tables.items():
        frame = table.reset_index()
        frame.insert(0, "train noise", train_noise)
        frame.insert(0, "dataset", dataset)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def write_tables(run_dir: Path) -> dict[str, str]:
    """(Re)write tables/ from records.csv and jobs.csv; returns the markdown of each metric."""
    records = read_records(run_dir)
    jobs = read_jobs(run_dir)
    protocol = ", ".join(sorted(records["protocol"].dropna().unique())) if not records.empty else "n/a"
    warnings = low_budget_warnings(records)
    rendered = {}
    for metric in METRICS:
        tables = build_tables(records, jobs, metric)
        markdown = render_markdown(tables, metric, protocol, profiles_of(records), warnings)
        write_text_atomic(run_dir / TABLES / f"{metric}.md", markdown)
        write_frame(run_dir / TABLES / f"{metric}.csv", tables_to_csv(tables))
        rendered[metric] = markdown
    return rendered
