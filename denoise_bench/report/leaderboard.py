"""Leaderboards merged from several run folders: the leaderboard folder written.

``bench leaderboard RUN_DIR... --out DIR`` merges the runs (``denoise_bench.report.leaderboard_merge``), makes
their tables (``denoise_bench.report.leaderboard_tables``) and writes ``leaderboard.{csv,md}``, all paired
differences to ``pairs.{csv,md}``, the learning curves, the inputs it was made from
(``leaderboard.json``) and the page (``denoise_bench.report.page``). Jobs that gave no numbers (skipped or
failed) are listed with their reasons under the table they would be in. Runs that differ in what
makes numbers comparable are merged only with ``allow_mismatch``, which lists the differences at the
top of the markdown. One process writes a leaderboard folder at a time (its ``.lock``, as a run folder's).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from denoise_bench.divergence import divergence_warnings
from denoise_bench.report.convergence import convergence_caveat
from denoise_bench.reproduction import NOTE as REPRODUCTION_NOTE
from denoise_bench.errors import BenchError
from denoise_bench.report.leaderboard_merge import RunInfo, merge_runs, name_curves, name_experiments
from denoise_bench.report.leaderboard_tables import (CONVERGENCE, CONVERGENCE_NOTE, FEW_IMAGES_NOTE, PAPER_GAP, PAPER_GAP_NOTE, REFERENCE_GAP, SUBSET_NOTE,
                                              TEST_SECONDS, curve_tables, floor_marked, has_few_images_mark, has_floor,
                                              has_implausible, implausible_marked, leaderboard_tables, not_run_by_table,
                                              pairs_table, paper_scoring_note, read_paper_results, noise_family)
from denoise_bench.run.lock import LOCK, run_lock, running_holder
from denoise_bench.store.output_folders import claim_folder
from denoise_bench.plausibility import IMPLAUSIBLE_NOTE
from denoise_bench.results import (CONFIG, FLOOR_NOTE, ORACLE_MARK, PRETRAINED_NOTE, has_pretrained, low_budget_warnings,
                                   dataset_channels, dataset_text, draws_text, markdown_table, markdown_text, not_run, nothing_ran, write_frame, write_json,
                                   write_text_atomic)
from denoise_bench.report.significance import MIN_INTERVAL_IMAGES

LEADERBOARD_INPUTS = "leaderboard.json"  # the runs a leaderboard was made from; every leaderboard folder has it


def test_crop_text(runs: list[RunInfo]) -> str:
    """What the merged runs scored of each test image, where some scored only a centre crop of it
    (``Budget.test_crop``, e.g. the quick profile's 256x256): "" where every run scored whole images."""
    crops: dict[int | None, list[str]] = {}
    for run in runs:
        crops.setdefault((run.config.get("budget") or {}).get("test_crop"), []).append(f"`{run.run_dir}`")
    if set(crops) <= {None}:
        return ""
    if len(crops) == 1:
        (side,) = crops
        return f"Each test image was scored on its centre {side}x{side} crop, not the whole image (the budget's test_crop)."
    return "Test images were scored as: " + "; ".join(
        f"{'whole images' if side is None else f'centre {side}x{side} crops'} ({', '.join(names)})"
        for side, names in crops.items()) + " (the budget's test_crop)."


def _listed(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def board_title(records: pd.DataFrame) -> str:
    """What a board ranks, for its first heading and its page's title: the test noise families, what the
    trained rows were trained on, the sets and the profiles, e.g. "Leaderboard: gaussian noise (trained on
    gaussian:sigma=0-50) on bsd68 and set12, profiles small and cpu". Boards of different noises or sets
    read alike under a bare "Leaderboard"."""
    families = _listed(sorted({noise_family(str(noise)) for noise in records.test_noise.unique()}))
    trained = [str(t) for t in dict.fromkeys(records.train_noise.dropna()) if str(t).strip()]
    title = f"Leaderboard: {families} noise" + (f" (trained on {_listed(sorted(trained))})" if trained else "")
    title += f" on {_listed(sorted(map(str, records.dataset.unique())))}"
    profiles = [str(p) for p in dict.fromkeys(records.profile.dropna())] if "profile" in records else []
    if profiles:  # in the order of the runs: the board's own profile first, then those of rows merged in
        title += f", profile{'s' if len(profiles) > 1 else ''} {_listed(profiles)}"
    return title


def write_leaderboard(run_dirs: list[Path], out: Path, allow_mismatch: bool = False, paper: bool = True,
                      html: bool = True, exclude: dict[str, list[str]] | None = None, findings: str | None = None,
                      controls: list[Path] | None = None) -> str:
    """Merge the runs and write leaderboard.{csv,md}, pairs.{csv,md} and (``html``) the page with its
    plots to ``out``; returns the markdown. ``exclude`` maps a run folder to methods left out of it.
    ``controls``: runs of the same experiments at half the steps, which measure how far from converged the
    rows are (denoise_bench.report.convergence) and are not ranked themselves.
    ``findings`` (markdown) is what its publisher found out about the rows (why a row is under the floor,
    why a self-supervised row beats its supervised bound): shown under the caveats, on the page too, and
    kept in leaderboard.json so that the board can be made again as it is."""
    exclude = exclude or {}
    controls = controls or []
    if set(map(Path.resolve, controls)) & set(map(Path.resolve, run_dirs)):
        raise BenchError("a run is given both as a board's run and as a doubling control (--control); give it once")
    if (out / CONFIG).is_file():  # its samples/ and tables are the run's own
        raise BenchError(f"--out {out} is a run folder; a leaderboard is written into a folder of its own")
    for run_dir in [*run_dirs, *controls]:  # its jobs so far would read as a finished run's: the methods still to come left unsaid
        holder = running_holder(run_dir)
        if holder:
            raise BenchError(f"{run_dir} is still running ({holder}); a leaderboard of it would publish its jobs so far "
                             "as the whole run: wait for it to end")
    claim_folder(out, LEADERBOARD_INPUTS, "leaderboard folder", ignored=(LOCK,))  # an earlier leaderboard's is rewritten
    out.mkdir(parents=True, exist_ok=True)  # a file system's refusal to make it is its own error, not the lock's
    # One board at a time in a folder: two at once would leave files of each, every one of them saying "done".
    with run_lock(out, what="leaderboard folder"):
        return _written(run_dirs, out, allow_mismatch, paper, html, exclude, findings, controls)


def _written(run_dirs: list[Path], out: Path, allow_mismatch: bool, paper: bool, html: bool,
             exclude: dict[str, list[str]], findings: str | None, controls: list[Path]) -> str:
    """:func:`write_leaderboard`'s files, written under the folder's lock."""
    merged = merge_runs([*run_dirs, *controls], allow_mismatch, exclude)
    control_dirs = {str(d) for d in controls}
    records = merged.records[merged.records.psnr.notna()]
    controlling = records.run_dir.isin(control_dirs)
    records, control_records = records[~controlling], records[controlling]
    if records.empty:
        why = nothing_ran(merged.jobs)
        raise BenchError("the runs hold no evaluated records" + (f" ({why})" if why else ""))
    records = name_experiments(records)  # one row per experiment, in the tables, pairs and plots alike
    # Named apart, so that no control's name is a ranked row's: only their experiments pair with the rows'.
    control_records = name_experiments(control_records).assign(
        method=lambda frame: frame.method + " (doubling control)") if not control_records.empty else None
    curves = name_curves(merged.curves[~merged.curves.run_dir.isin(control_dirs)], records) \
        if not merged.curves.empty else merged.curves
    # The convergence column only where some run recorded a curve: without any, the caveat says it is not measured.
    tables = leaderboard_tables(records, read_paper_results() if paper else None, None if curves.empty else curves,
                                control_records)
    ranked_jobs = merged.jobs[~merged.jobs.run_dir.isin(control_dirs)] if "run_dir" in merged.jobs else merged.jobs
    missing = not_run(ranked_jobs, merged.records)
    under, unplaced = not_run_by_table(missing, records, tables)
    title = board_title(records)
    lines = [f"# {markdown_text(title)}", "", "Runs: " + ", ".join(f"`{d}`" for d in run_dirs), ""]
    if controls:
        lines += ["Doubling controls (the same experiments at half the steps; they measure the `last doubling` of "
                  "the rows and are not ranked): " + ", ".join(f"`{d}`" for d in controls), ""]
    protocols = ", ".join(sorted(records.protocol.unique()))
    lines += [f"Protocol {protocols}. Methods ranked by mean PSNR; each is compared with the one above it on their "
              "common images: mean paired PSNR difference and 95 % bootstrap interval over images "
              f"(\"tie\" when it contains 0). {SUBSET_NOTE}", ""]
    draws = dict.fromkeys(text for text in map(draws_text, (run.config for run in merged.runs)) if text)
    if draws:
        lines += [f"Noise draws: {markdown_text(' / '.join(draws))}.", ""]
    crops = test_crop_text(merged.runs)
    if crops:
        lines += [crops, ""]
    lines += [f"> **Warning:** {markdown_text(text)}" for text in low_budget_warnings(records) + divergence_warnings(curves, records)]
    lines += [f"> **How far from converged:** {convergence_caveat(records, curves, control_records)}", ""]
    if findings:
        lines += ["## Findings", "", findings.strip(), ""]
    if exclude:
        lines += ["Left out: " + "; ".join(f"{markdown_text(', '.join(m))} of `{run}`" for run, m in exclude.items()), ""]
    if merged.mismatches:
        lines += ["**Merged despite differences:**", ""] + [f"* {markdown_text(m)}" for m in merged.mismatches] + [""]
    frames = []
    channels = dataset_channels(run.config for run in merged.runs)
    for (dataset, test_noise), table in tables.items():
        shown = implausible_marked(floor_marked(table))
        shown = shown.astype(object).where(shown.notna(), "")
        heading = f"{dataset_text(dataset, channels)}, {test_noise}"
        lines += [f"## {markdown_text(heading)}", "", markdown_table(shown, index=False), ""]
        if (dataset, test_noise) in under:
            lines += ["Not run (no numbers):", ""] + [f"- {markdown_text(text)}" for text in under[(dataset, test_noise)]] + [""]
        frames.append(table.assign(dataset=dataset, test_noise=test_noise))
    if unplaced:
        lines += ["## Not run (no numbers in any table)", ""] + [f"- {markdown_text(text)}" for text in unplaced] + [""]
    if any(has_few_images_mark(table) for table in tables.values()):
        lines += [FEW_IMAGES_NOTE, ""]
    if any(has_floor(table) for table in tables.values()):
        lines += [FLOOR_NOTE, ""]
    if any(has_implausible(table) for table in tables.values()):
        lines += [IMPLAUSIBLE_NOTE, ""]
    if any(has_pretrained(table["method"]) for table in tables.values()):
        lines += [PRETRAINED_NOTE, ""]
    lines.append(f"{ORACLE_MARK} told the true noise level of each test image. `{REFERENCE_GAP}`: mean paired PSNR "
                 "difference to the supervised U-Net on common images. "
                 f"`{TEST_SECONDS}`: mean seconds to denoise one test image, all that a per-image method (no "
                 "iterations, no training time) costs.")
    if any(PAPER_GAP in table for table in tables.values()):
        lines += ["", PAPER_GAP_NOTE]
    if any(CONVERGENCE in table for table in tables.values()):
        lines += ["", CONVERGENCE_NOTE]
    lines += ["", REPRODUCTION_NOTE]
    published = read_paper_results() if paper else None
    if published is not None and any(PAPER_GAP in table or dataset in set(published.dataset)
                                     for (dataset, _), table in tables.items()):
        lines += ["", paper_scoring_note(published)]
    if not curves.empty:
        lines += ["", "# Learning curves", "", "Mean test PSNR at training steps, with the training seconds spent to reach "
                  "them (evaluation time excluded): compare methods at equal iterations or equal time.", ""]
        for (dataset, test_noise), table in curve_tables(curves).items():
            lines += [f"## {markdown_text(dataset_text(dataset, channels))}, {markdown_text(test_noise)}", "",
                      markdown_table(table), ""]
        written = curves.drop(columns="run_dir")
        # Like its tables, the file has the floor's column only where some point has the floor.
        write_frame(out / "curves.csv", written.drop(columns="floor_psnr") if written.floor_psnr.isna().all() else written)
    markdown = "\n".join(lines) + "\n"
    # What the leaderboard was made from, so that it can be checked and re-made.
    inputs = {"runs": [str(d) for d in run_dirs], "allow_mismatch": allow_mismatch, "paper": paper}
    write_json(out / LEADERBOARD_INPUTS, inputs | ({"exclude": exclude} if exclude else {})
               | ({"findings": findings} if findings else {}) | ({"controls": [str(d) for d in controls]} if controls else {}))
    write_text_atomic(out / "leaderboard.md", markdown)
    write_frame(out / "leaderboard.csv", pd.concat(frames, ignore_index=True))
    pairs = pairs_table(records)
    write_frame(out / "pairs.csv", pairs)
    few = "few images" in pairs and bool(pairs["few images"].any())
    write_text_atomic(out / "pairs.md", "# Paired PSNR differences (95 % bootstrap intervals over images)\n\n"
                      + markdown_table(pairs, index=False) + "\n"
                      + (f"\n`few images`: over fewer than {MIN_INTERVAL_IMAGES} common images, too few for the "
                         "interval to mean much.\n" if few else ""))
    if html:
        from denoise_bench.report.page import write_html  # matplotlib is imported only when a page is made

        write_html(out, {key: implausible_marked(floor_marked(table)) for key, table in tables.items()}, records, curves, merged.runs,
                   under, unplaced, findings, title, control_records)
    return markdown
