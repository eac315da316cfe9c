"""The ``bench`` command line."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import click

from denoise_bench import __version__
from denoise_bench.data import resolve_data_dir
from denoise_bench.engine import Engine, resolve_engine
from denoise_bench.environment import pick_device
from denoise_bench.errors import BenchError
from denoise_bench.host_memory import keep_freed_memory
from denoise_bench.report.leaderboard import write_leaderboard
from denoise_bench.method import Method
from denoise_bench.network_method import NetworkMethod
from denoise_bench.noise import split_noise_list
from denoise_bench.store.output_folders import claim_folder, writing_into
from denoise_bench.perf import PERF_REPORT, PerfSettings, write_report
from denoise_bench.plugins import Registry, get_registry
from denoise_bench.profiles import NEXT_STEPS
from denoise_bench.report.install_check import install_check_text
from denoise_bench.protocol import PROTOCOLS
from denoise_bench.results import nothing_ran, write_tables
from denoise_bench.run.dry_run import describe_grid, describe_run
from denoise_bench.run.grid import units
from denoise_bench.run.time_estimate import probe_load, timed_estimate
from denoise_bench.run.planning import RUNS_DIR, RunPlan, latest_run
from denoise_bench.run.rescoring import evaluation_request
from denoise_bench.run.dispatch import Executor, make_executor
from denoise_bench.run.request import DATA_DIR_HELP, PROGRESS_HELP
from denoise_bench.request_schema import split_commas
from denoise_bench.cli.request_options import (AbsolutePath, PathOrUnset, TestImages, engine_options, grid_flags, load_request_file,
                                                 request_of_options, request_options)
from denoise_bench.run.runner import RunRequest, plan, run
from denoise_bench.reproduction import reproductions
from denoise_bench.supervision import Supervision


class BenchGroup(click.Group):
    """Prints a user error as one line and exits 2, instead of a traceback; a ``sys.exit`` from code that is
    not the command's (a plugin's) as one line that says where it came from, exit 1."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except BenchError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(2)
        except SystemExit as exc:  # the commands end through click.exceptions.Exit, never SystemExit
            click.echo(f"error: {_exit_text(exc)}; the command did not finish", err=True)
            ctx.exit(1)


def _exit_text(exc: SystemExit) -> str:
    """A stray ``SystemExit`` in words: its code and the line that raised it."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where = f" at {tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb is not None else ""
    return f"SystemExit({exc.code!r}) raised{where} (plugin code that called sys.exit?)"


@click.group(cls=BenchGroup)
@click.version_option(__version__, "--version", prog_name="denoise-bench")
def main() -> None:
    """denoise-bench: benchmark self-supervised image denoisers (IDDP and friends)."""
    keep_freed_memory()  # before any tensor work: see denoise_bench.host_memory


def _registry() -> Registry:
    """The registry, after warning once on stderr about each plugin that was skipped (the command goes on)."""
    registry = get_registry()
    for failure in registry.failures:
        click.echo(f"warning: {failure}", err=True)
    return registry


def _key_values(pairs: tuple[str, ...], what: str) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key.strip():
            raise BenchError(f"{what} {pair!r} is not of the form KEY=VALUE")
        out[key.strip()] = value.strip()
    return out


def _progress(flag: bool | None) -> bool:
    """--progress / --no-progress as given, else bars only on a terminal: stderr, where tqdm draws them."""
    return sys.stderr.isatty() if flag is None else flag


def _dataset_paths(names: list[str], options: dict[str, str], registry: Registry) -> list[str]:
    """A --dataset entry that is a folder (and no dataset's name) is the 'folder' dataset with path=it."""
    folders = [n for n in names if n not in registry.datasets and Path(n).expanduser().is_dir()]
    if len(folders) > 1:
        raise BenchError(f"--dataset: one folder per run (the path is a dataset option); got {', '.join(folders)}")
    if folders:
        if options.get("path") not in (None, folders[0]):
            raise BenchError(f"--dataset {folders[0]} and --dataset-option path={options['path']} disagree")
        options["path"] = folders[0]
    return ["folder" if n in folders else n for n in names]


def _resume_command(run_dir: Path, request: RunRequest, executor: str, executor_options: tuple[str, ...]) -> str:
    """The command that continues an interrupted run: the folder holds the request, the rest is where it runs."""
    parts = ["bench", "run", "--resume", shlex.quote(str(run_dir))]
    if request.device not in (None, "auto"):
        parts += ["--device", shlex.quote(request.device)]
    if executor != "inline":
        parts += ["--executor", shlex.quote(executor)]
        parts += [f"--executor-option {shlex.quote(o)}" for o in executor_options]
    return " ".join(parts)


@main.command("run")
@click.option("--config", "config_file", type=AbsolutePath(path_type=Path, dir_okay=False), default=None, is_eager=True,
              expose_value=False, callback=load_request_file,
              help="A TOML file of flags (methods = [\"iddp\"], iterations = 500, ...), or a run folder's config.json "
                   "to replay it; flags given here override the file's.")
@request_options
@click.option("--resume", "resume_dir", type=AbsolutePath(path_type=Path, file_okay=False), default=None,
              help="Continue an interrupted run folder with the request recorded in it (other grid options are ignored). "
                   "Re-running the same command with the same --out continues it too.")
@click.option("--executor", default="inline", show_default=True,
              help="inline: run the jobs here; slurm: submit each job through submitit; local: submitit's local processes; "
                   "or an executor a plugin registers.")
@click.option("--executor-option", "executor_options", multiple=True,
              help="KEY=VALUE for submitit, e.g. slurm_partition=gpu, gpus_per_node=1, timeout_min=600.")
@click.option("--dry-run", is_flag=True,
              help="Print the grid (each job's engine, options, budget, test images and time on this machine, "
                   "from a short timed probe; skipped cells and why) and stop.")
def run_command(resume_dir: Path | None, executor: str, executor_options: tuple[str, ...], dry_run: bool,
                **given: Any) -> None:
    """Train and evaluate a grid of methods x noise x datasets x seeds; print the tables."""
    asked = request_of_options(given)  # checked even when resuming: a bad flag is an error either way
    registry = _registry()
    if resume_dir is not None:
        request = RunRequest.from_run_dir(resume_dir)
        request.progress = _progress(given["progress"])
        request.tensorboard = request.tensorboard or asked.tensorboard  # a resumed run may turn events on
        request.threads = asked.threads  # where it runs, like the device: not recorded
    else:
        request = asked
        request.datasets = _dataset_paths(request.datasets, request.dataset_options, registry)
        request.progress = _progress(given["progress"])
    job_executor = make_executor(executor, _key_values(executor_options, "--executor-option"))
    the_plan = plan(request, registry)
    if dry_run:
        grid = units(the_plan)
        load = probe_load(the_plan)  # before the probe: the other work's load, not the probe's own
        click.echo(describe_grid(the_plan, *timed_estimate(the_plan, grid), load))
        return
    _execute(the_plan, job_executor, _resume_command(the_plan.run_dir, request, executor, executor_options))


def _execute(the_plan: RunPlan, job_executor: Executor | None, resume_command: str) -> None:
    """Run a planned grid and print its tables; exit 1 if a job failed, 130 (with ``resume_command``) on Ctrl-C."""
    request = the_plan.request
    click.echo(describe_run(the_plan))
    if request.data_dir is not None:  # it may have been found rather than given: say which folder the sets came from
        click.echo(f"data folder: {request.data_dir}")
    try:
        result = run(the_plan, echo=click.echo, executor=job_executor)
    except KeyboardInterrupt:
        if (the_plan.run_dir / "config.json").is_file():
            click.echo(f"\ninterrupted; what finished is in {the_plan.run_dir}; resume with: {resume_command}", err=True)
        else:
            click.echo("\ninterrupted before the run folder was written; nothing to resume", err=True)
        raise click.exceptions.Exit(130)
    for markdown in result.tables.values():  # one per metric
        click.echo(markdown)
    click.echo(f"records: {result.run_dir / 'records.csv'}  tables: {result.run_dir / 'tables'}")
    checked = install_check_text(result.records)  # only a run made as the README's first command has a reference
    if checked:
        click.echo(checked)
    if request.profile in NEXT_STEPS and result.failed.empty:
        click.echo(f"next: {next_command(request)}")
    why = nothing_ran(result.jobs)
    if why and result.failed.empty:  # an impossible grid: a user error like a bad name
        raise BenchError(f"{why}; see {result.run_dir / 'jobs.csv'}")
    if not result.failed.empty:
        click.echo(f"error: {len(result.failed)} job(s) failed; see {result.run_dir / 'jobs.csv'}", err=True)
        if why:
            click.echo(f"error: {why}", err=True)
        raise click.exceptions.Exit(1)


def next_command(request: RunRequest) -> str:
    """The run to make after this one (``NEXT_STEPS`` of its profile): the same grid at the next size up, with
    the data folder where it is not the one found without a flag."""
    step = NEXT_STEPS[request.profile]
    words = ["bench", "run", *grid_flags(request)]
    if request.data_dir is not None and request.data_dir != resolve_data_dir(None):
        words += ["--data-dir", shlex.quote(str(request.data_dir))]
    words += ["--profile", step.profile] + (["--dry-run"] if step.dry_run else [])
    return " ".join(words) + (f"   {step.note}" if step.note else "")


@main.command("evaluate")
@click.option("--run", "run_dir", required=True, type=AbsolutePath(path_type=Path, file_okay=False, exists=True),
              help="The run folder whose trained models are scored (its checkpoints/ hold them).")
@click.option("--dataset", "datasets", required=True, help="Comma-separated dataset names, or a folder of images.")
@click.option("--noise", "noises", multiple=True,
              help="Test noise: a family (its preset tests) or a spec such as gaussian:sigma=50 [default: each training "
                   "noise's own tests]. The models trained on other families are left out. Comma-separated or repeated.")
@click.option("--methods", default=None,
              help="Comma-separated: some of the run's trained methods, and any per-image method [default: every method it trained].")
@click.option("--dataset-option", "dataset_options", multiple=True, help="KEY=VALUE for the dataset, e.g. channels=1 for a folder.")
@click.option("--data-dir", type=PathOrUnset(path_type=Path), default=None, help=DATA_DIR_HELP)
@click.option("--device", default="auto", show_default=True, help="auto (CUDA when present), cpu, cuda, cuda:1, ...")
@click.option("--out", type=AbsolutePath(path_type=Path, file_okay=False), default=None,
              help="New run folder (default runs/<timestamp>).")
@click.option("--progress/--no-progress", default=None, help=PROGRESS_HELP)
@click.option("--tensorboard", is_flag=True,
              help="Final PSNR/SSIM per job as TensorBoard events under OUT/tensorboard/ (the tensorboard extra).")
@click.option("--protocol", type=click.Choice(list(PROTOCOLS)), default=None,
              help="Score under this protocol [default: the trained run's]; another one makes other experiments.")
@click.option("--test-images", type=TestImages(), default=None,
              help="Score the first N test images, or 'all' [default: as many as the trained run scored]; the rows "
                   "stay the trained run's experiments.")
def evaluate_command(run_dir: Path, datasets: str, noises: tuple[str, ...], methods: str | None,
                     dataset_options: tuple[str, ...], data_dir: Path | None, device: str, out: Path | None,
                     progress: bool | None, tensorboard: bool, protocol: str | None, test_images: int | str | None) -> None:
    """Score the models trained in a run on other test sets, without training; results go to a new run folder.

    The protocol, profile, budget and engine are the trained run's, so `bench leaderboard` puts the new
    folder's rows beside the trained run's as the same experiments. `--protocol paper` scores the same
    models and noisy inputs as the IDDP paper scored (luma of colour images): rows of a leaderboard of
    their own, since their numbers do not compare with the trained run's.
    """
    if out is not None and out.resolve() == run_dir.resolve():
        raise BenchError(f"--out {out} is the trained run itself; an evaluation writes a new run folder")
    registry = _registry()
    options = _key_values(dataset_options, "--dataset-option")
    request = evaluation_request(
        run_dir, _dataset_paths(split_commas(datasets), options, registry), registry,
        methods=split_commas(methods) if methods is not None else None,
        test_noises=[item for text in noises for item in split_noise_list(text)], data_dir=resolve_data_dir(data_dir),
        dataset_options=options, device=device, out=out, progress=_progress(progress), tensorboard=tensorboard, protocol=protocol,
        test_images=test_images, note=lambda text: click.echo(f"note: {text}", err=True))
    the_plan = plan(request, registry)
    _execute(the_plan, None, f"bench run --resume {shlex.quote(str(the_plan.run_dir))}")


def official_budget_text(method: type[Method]) -> str:
    """A method's published training budget in words: what the official profile trains it with."""
    budget = method.official_budget
    if "per_image_iterations" in budget:
        return f"{budget['per_image_iterations']:,} steps per image"
    if "iterations" in budget:
        return f"{budget['iterations']:,} steps of batch {budget['batch_size']} on {budget['crop_size']}x{budget['crop_size']} crops"
    return "none published" if method.trainable else "nothing to train"


@main.command("list")
def list_command() -> None:
    """List the registered methods, datasets and noise models."""
    registry = _registry()
    click.echo("Methods:")
    for name, cls in sorted(registry.methods.items()):
        flags = [f"supervision={Supervision(cls.supervision).value}"]
        if cls.uses_noise_level:
            flags.append("uses noise level")
        if not cls.trainable:
            flags.append("per image")
        if cls.requires:
            flags.append(f"needs {'+'.join(sorted(cls.requires))} noise")
        click.echo(f"  {name:<12} {cls.description} [{', '.join(flags)}]")
        click.echo(f"  {'':<12} {cls.citation}")
        if cls.options:
            click.echo(f"  {'':<12} options: {', '.join(f'{k}={v!r}' for k, v in cls.options.items())}")
        if cls.extensions:
            click.echo(f"  {'':<12} extensions (not the paper's; a row made with any is named for it, (ours)): "
                       f"{', '.join(cls.extensions)}")
        click.echo(f"  {'':<12} official budget (--profile official): {official_budget_text(cls)}")
        reproduction = reproductions().get(name)
        if reproduction is not None:
            click.echo(f"  {'':<12} published numbers: {reproduction.status} ({reproduction.evidence})")
        click.echo(f"  {'':<12} from {registry.sources.get(('method', name), '?')}")
    click.echo("Datasets:")
    for name, dataset_cls in sorted(registry.datasets.items()):
        # A set whose options can set its channels (a folder: as its files are) has no one kind to list.
        kind = ("gray or colour" if "channels" in dataset_cls.option_names
                else "gray" if dataset_cls.channels == 1 else "colour")
        click.echo(f"  {name:<12} {dataset_cls.description} [{kind}; from {registry.sources.get(('dataset', name), '?')}]")
    click.echo("Noise models:")
    for name, family in sorted(registry.noise_families.items()):
        params = ",".join(p.name for p in family.params)
        click.echo(f"  {name:<17} {family.description} (params: {params})")
        click.echo(f"  {'':<17} properties: {', '.join(sorted(family.properties)) or 'none'}; "
                   f"from {registry.sources.get(('noise model', name), '?')}")
        if family.preset_train:
            setting = registry.noise_setting(name)
            tests = "; ".join(str(t) for t in setting.tests)
            click.echo(f"  {'':<17} preset: train {setting.train}; test {tests}")
    click.echo("Metrics:")
    for name, metric in registry.metrics.items():  # in the order tables show them
        click.echo(f"  {name:<12} {metric.description} [{'higher' if metric.higher_is_better else 'lower'} is better; "
                   f"from {registry.sources.get(('metric', name), '?')}]")


def _findings_text(path: Path) -> str:
    """A leaderboard's findings file, or a clear error naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise BenchError(f"--findings {path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise BenchError(f"--findings {path} cannot be read ({exc.strerror})") from None
    if not text.strip():
        raise BenchError(f"--findings {path} is empty")
    return text


@main.command("leaderboard")
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(path_type=Path, file_okay=False))
@click.option("--out", "out", required=True, type=AbsolutePath(path_type=Path, file_okay=False),
              help="Folder for leaderboard.{csv,md} and pairs.{csv,md}.")
@click.option("--allow-mismatch", is_flag=True, help="Merge runs whose protocol, profile or budget differ (listed in the output).")
@click.option("--paper/--no-paper", default=True, show_default=True, help="Show published numbers beside ours where they exist.")
@click.option("--html/--no-html", default=True, show_default=True, help="Also write index.html with plots (PNG and SVG) and sample crops.")
@click.option("--exclude", "excluded", multiple=True, metavar="METHOD@RUN_DIR",
              help="Leave one method of one run out (e.g. a training that another run redid). Repeatable.")
@click.option("--findings", "findings_file", type=AbsolutePath(path_type=Path, dir_okay=False, exists=True), default=None,
              help="A markdown file of what was found out about the rows (why one is under the floor, ...), shown under "
                   "the board's caveats and on its page.")
@click.option("--control", "controls", multiple=True, type=click.Path(path_type=Path, file_okay=False),
              help="A run of the same experiments at half the steps: it measures how far from converged the rows are "
                   "(their `last doubling`) and is not ranked. Repeatable.")
def leaderboard_command(run_dirs: tuple[Path, ...], out: Path, allow_mismatch: bool, paper: bool, html: bool,
                        excluded: tuple[str, ...], findings_file: Path | None, controls: tuple[Path, ...]) -> None:
    """Merge the records of RUN_DIRS into ranked tables with paired significance tests."""
    exclude: dict[str, list[str]] = {}
    for item in excluded:
        method, at, run_dir = item.partition("@")
        if not at or not method or not run_dir:
            raise BenchError(f"--exclude {item!r} is not of the form METHOD@RUN_DIR")
        exclude.setdefault(str(Path(run_dir)), []).append(method)
    findings = _findings_text(findings_file) if findings_file else None
    with writing_into(out):
        click.echo(write_leaderboard(list(run_dirs), out, allow_mismatch, paper, html, exclude, findings, list(controls)))
    if html:
        click.echo(f"page: {out / 'index.html'}")


@main.command("perf")
@click.option("--methods", default="iddp,nb2nb,n2v", show_default=True, help="Network methods to time.")
@click.option("--batches", default="1,8", show_default=True, help="Comma-separated batch sizes.")
@click.option("--crop", type=int, default=128, show_default=True)
@click.option("--width", type=int, default=48, show_default=True)
@click.option("--steps", type=int, default=20, show_default=True, help="Timed iterations per measurement.")
@click.option("--rounds", type=int, default=3, show_default=True, help="Measurements per case; the fastest is reported.")
@click.option("--device", default=None, help="cpu or cuda (default: cuda when present).")
@click.option("--peak-tflops", type=float, default=None, help="The device's peak rate, for the arithmetic bound.")
@click.option("--channels", type=click.IntRange(1, 3), default=3, show_default=True, help="1 gray, 3 colour.")
@click.option("--compare/--no-compare", default=True, show_default=True,
              help="Also time every case in fp32 eager (interleaved) when the chosen engine differs from it.")
@click.option("--out", "out", required=True, type=AbsolutePath(path_type=Path, file_okay=False),
              help="Folder for perf.json and perf.md.")
@engine_options
def perf_command(methods: str, batches: str, crop: int, width: int, steps: int, rounds: int, device: str | None,
                 peak_tflops: float | None, channels: int, compare: bool, out: Path, **engine_choices: Any) -> None:
    """Time training iterations and evaluation; compare with a bare PyTorch loop and the physical bounds."""
    try:
        batch_sizes = tuple(int(b) for b in split_commas(batches))
    except ValueError:
        raise BenchError(f"--batches {batches!r} must be comma-separated integers") from None
    registry = _registry()
    for name in split_commas(methods):
        if not issubclass(registry.method(name), NetworkMethod):
            raise BenchError(f"bench perf times network methods; {name!r} is not one")
    claim_folder(out, PERF_REPORT, "perf folder")  # before anything is timed
    chosen = pick_device(device)
    engine = resolve_engine(**engine_choices, device=chosen)
    baseline = Engine() if compare and engine != Engine() else None
    settings = PerfSettings(methods=tuple(split_commas(methods)), batches=batch_sizes, crop=crop, width=width, steps=steps,
                            rounds=rounds, device=chosen, peak_tflops=peak_tflops, engine=engine, baseline=baseline,
                            channels=channels)
    with writing_into(out):
        click.echo(write_report(settings, out))


@main.command("table")
@click.argument("run_dir", type=click.Path(path_type=Path, file_okay=False), required=False)
def table_command(run_dir: Path | None) -> None:
    """Re-render the tables of RUN_DIR (default: the latest run under runs/) from its records: PSNR, SSIM and
    any metric a plugin adds."""
    if run_dir is None:
        run_dir = latest_run(RUNS_DIR)
        click.echo(f"run folder: {run_dir}")
    for markdown in write_tables(run_dir).values():  # one per metric
        click.echo(markdown)


# --- trained models outside their run: bench export (denoise_bench.models.trained) ---------------------

@main.command("export")
@click.argument("run_dir", type=AbsolutePath(path_type=Path, file_okay=False))
@click.option("--method", "method", required=True, help="A method trained in RUN_DIR.")
@click.option("--noise", "noise", default=None, help="Its training noise, where RUN_DIR trained it on several.")
@click.option("--seed", "seed", type=int, default=None, help="Its seed, where RUN_DIR trained several.")
@click.option("--out", "out", required=True, type=AbsolutePath(path_type=Path, dir_okay=False), help="The .safetensors file to write.")
def export_command(run_dir: Path, method: str, noise: str | None, seed: int | None, out: Path) -> None:
    """Write a method trained in RUN_DIR as a .safetensors file (weights + description); print its sha256."""
    from denoise_bench.models.denoise_files import run_checkpoint
    from denoise_bench.models.trained import export_safetensors, load_safetensors

    if out.suffix != ".safetensors":
        raise BenchError(f"--out {out}: the file name must end in .safetensors")
    if out.exists():
        try:
            load_safetensors(out)  # an earlier export is replaced; any other file is left as it is
        except BenchError:
            raise BenchError(f"--out {out} exists and is no denoise-bench export: bench export replaces only its "
                             "own exports; choose another --out") from None
    found, state = run_checkpoint(run_dir, method, noise, seed, _registry())  # older checkpoints: header from config.json
    with writing_into(out):
        digest = export_safetensors(found.path, out, state)
    click.echo(f"{out}  ({found.method} trained on {found.training_set}, noise {found.noise}, seed {found.seed})")
    click.echo(f"sha256 {digest}")


@main.command("denoise")
@click.argument("inputs", nargs=-1, required=True, type=AbsolutePath(path_type=Path))
@click.option("--run", "run_dir", required=True, type=AbsolutePath(path_type=Path, file_okay=False), help="The run folder.")
@click.option("--method", "method", required=True, help="A method of that run (trained there, or per image).")
@click.option("--noise", "noise", default=None, help="Its training noise, where the run trained it on several.")
@click.option("--seed", "seed", type=int, default=None, help="Its seed, where the run trained several.")
@click.option("--out", "out", type=AbsolutePath(path_type=Path, file_okay=False), default=Path("denoised"), show_default=True)
@click.option("--format", "fmt", type=click.Choice(["png", "tiff", "npy"]), default="png", show_default=True,
              help="png: 8-bit; tiff, npy: float32 in [0, 1], not clipped.")
@click.option("--sigma", type=float, default=None,
              help="Noise level (of 255) for methods told it (bm3d); default: estimated from each image.")
@click.option("--device", default="cpu", show_default=True)
def denoise_command(inputs: tuple[Path, ...], run_dir: Path, method: str, noise: str | None, seed: int | None,
                    out: Path, fmt: str, sigma: float | None, device: str) -> None:
    """Denoise image files (or folders of them) with METHOD as RUN_DIR trained it."""
    from denoise_bench.models.denoise_files import denoise_files, image_files, output_files, run_denoiser

    if sigma is not None and not 0 < sigma <= 255:  # NaN too: it would denoise to NaN, written as a black image
        raise BenchError(f"--sigma {sigma:g}: the noise level is a number above 0 and at most 255")
    output_files(image_files(list(inputs)), out, fmt)  # where it would write, refused before a model is loaded
    registry = _registry()
    denoiser = run_denoiser(run_dir, method, noise, seed, device, registry)
    how = "trained on" if denoiser.method.trainable else "per image; the run's noise"
    click.echo(f"{denoiser.name} from {run_dir} ({how} {denoiser.train_noise or 'captured noise'})")

    def say(item) -> None:
        click.echo(f"{item.source} -> {item.written}" + (f"  [{item.level}]" if item.level else ""))
        if item.doubt:  # written anyway: the user decides, but is not left to find a black image
            click.echo(f"warning: {item.written}: {item.doubt}; is {denoiser.name} trained enough?", err=True)

    # Those written before a full disk stay (each whole): a run again would refuse them as existing files.
    with writing_into(out, f"the images before it are in {out}: free some space, then denoise the rest into "
                           "another --out"):
        denoise_files(denoiser, list(inputs), out, fmt, sigma, registry, on_image=say)


if __name__ == "__main__":
    main()
