"""``bench perf``: how fast the training and evaluation steps run, and how far that is from the limit.

For each method and batch size it measures the shared training loop (``training.train``, exactly
what ``bench run`` executes: crops and noise drawn by the training view on the device, the method's
loss, Adam, the schedule) in iterations per second, and evaluation in images per second. Against
that it states two bounds for one training iteration:

* arithmetic: floating-point operations counted by ``torch.utils.flop_counter`` divided by the
  device's peak rate (``peak_tflops``; unknown for CPUs unless given);
* launch: operators dispatched per iteration (counted with ``torch.profiler``) times a per-launch
  cost (10 us by default, typical of a CUDA kernel launch from eager PyTorch).

On any device it also runs a bare PyTorch loop of IDDP's network, loss and optimiser on
pre-drawn batches and reports the ratio suite / bare, interleaving the two so that a busy machine
slows both alike: the suite's overhead over hand-written code.

With a ``baseline`` engine (by default fp32 eager, whenever the chosen engine differs from it, as
``--precision auto`` does on CPUs with AMX) every training measurement is made with
both engines in interleaved rounds, and the report puts them side by side with their speed ratio.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import skimage.data
import torch
from torch.utils.flop_counter import FlopCounterMode

from denoise_bench.captured_step import WARMUP_STEPS
from denoise_bench.engine import Engine
from denoise_bench.environment import cpu_speed_facts
from denoise_bench.images import to_chw
from denoise_bench.method import MethodSetup, TrainContext
from denoise_bench.network_method import NetworkMethod
from denoise_bench.noise import parse_spec
from denoise_bench.plugins import get_registry
from denoise_bench.profiles import Budget
from denoise_bench.results import write_json, write_text_atomic
from denoise_bench.supervision import Batch, NoisePolicy, Supervision, TrainingView, build_view
from denoise_bench.training import CHECK_EVERY, make_optimizer, train

LAUNCH_COST_S = 10e-6
CHANNELS = 3  # colour, as in the paper's tables
PAPER_METHOD = "iddp"  # timed against a bare loop and for evaluation; looked up in the registry like any method
PERF_REPORT = "perf.json"  # written into every folder of bench perf (beside perf.md)


@dataclass
class PerfSettings:
    methods: tuple[str, ...] = ("iddp", "nb2nb", "n2v")
    batches: tuple[int, ...] = (1, 8)
    crop: int = 128
    width: int = 48
    steps: int = 20  # timed iterations per measurement (after WARMUP)
    rounds: int = 3  # repeated measurements; the fastest is reported (least disturbed by other load)
    eval_size: int = 512  # evaluation on eval_size x eval_size images (a padded BSD300 image)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    peak_tflops: float | None = None
    launch_cost_s: float = LAUNCH_COST_S
    engine: Engine = field(default_factory=Engine)  # the same switches as `bench run` (both loops use them)
    baseline: Engine | None = None  # also time every training case with this engine, interleaved
    channels: int = CHANNELS


WARMUP = 3


def _view(supervision: Supervision, device: torch.device, channels: int = CHANNELS) -> TrainingView:
    """Crops of two photographs, noise drawn on the device: the runner's own data path."""
    photo = to_chw(skimage.data.astronaut())[:channels]
    images = [photo[:, :256, :256].contiguous(), photo[:, 256:, 256:].contiguous()]
    return build_view(supervision, images, parse_spec("gaussian:sigma=0-50", get_registry().noise_families),
                      NoisePolicy.FRESH, device, seed=0)


def _method(name: str, s: PerfSettings, batch: int, iterations: int) -> NetworkMethod:
    budget = Budget(iterations=iterations, batch_size=batch, crop_size=s.crop, width=s.width, test_images=None,
                    test_crop=None, per_image_iterations=1)
    method = get_registry().method(name)(MethodSetup(channels=s.channels, budget=budget, device=s.device, engine=s.engine))
    # perf_command refuses a name that is not a NetworkMethod's before anything is timed
    assert isinstance(method, NetworkMethod), f"bench perf times network methods; {name!r} is not one"
    return method


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_suite_steps(name: str, s: PerfSettings, batch: int) -> float:
    """Seconds per iteration of the shared training loop (WARMUP untimed iterations first)."""
    if s.engine.capture:
        return _time_captured_steps(name, s, batch)
    method = _method(name, s, batch, WARMUP + s.steps)
    view = _view(Supervision(method.supervision), s.device, s.channels)
    train(method, view, method.setup.budget.override(iterations=WARMUP), TrainContext())
    _sync(s.device)
    start = time.perf_counter()
    train(method, view, method.setup.budget.override(iterations=s.steps), TrainContext())
    _sync(s.device)
    return (time.perf_counter() - start) / s.steps


def _train_past_first_check(name: str, s: PerfSettings, batch: int, steps: int,
                            at_first_check: Callable[[], object]) -> None:
    """Train ``name`` for CHECK_EVERY + ``steps`` iterations of the shared loop, calling ``at_first_check`` at the
    loop's first loss check (a device sync, after a captured step's warm-up and recording), and wait for the
    device at the end: what follows that call is ``steps`` steady steps."""
    assert WARMUP_STEPS < CHECK_EVERY
    method = _method(name, s, batch, CHECK_EVERY + steps)
    view = _view(Supervision(method.supervision), s.device, s.channels)

    def on_step(step: int, loss: float, lr: float = math.nan) -> None:
        if step == CHECK_EVERY:
            at_first_check()

    train(method, view, method.setup.budget, TrainContext(on_step=on_step))
    _sync(s.device)


def _time_captured_steps(name: str, s: PerfSettings, batch: int) -> float:
    """Seconds per iteration of the shared loop's captured step, once recorded: timed from the loop's first
    loss check to its end, so that recording the graph is not counted as stepping."""
    started: list[float] = []
    _train_past_first_check(name, s, batch, s.steps, lambda: started.append(time.perf_counter()))
    return (time.perf_counter() - started[0]) / s.steps


def time_bare_steps(name: str, s: PerfSettings, batch: int) -> float:
    """Seconds per iteration of a plain PyTorch loop over the method's network, loss and optimiser.

    The batches are drawn before the clock starts, and there is no schedule, divergence check or
    checkpoint: what is left is the work any hand-written training loop does.
    """
    method = _method(name, s, batch, 1)
    view = _view(Supervision(method.supervision), s.device, s.channels)
    batches = [view.sample(batch, method.training_crop().side) for _ in range(4)]
    optimizer = make_optimizer(method)
    step_begin = s.engine.step_begin(s.device)

    def step(drawn: Batch) -> None:
        step_begin()
        with s.engine.autocast(s.device):
            loss = method.training_loss(drawn, 0.0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    with s.engine.training(method.net, s.device):
        for i in range(WARMUP):
            step(batches[i % len(batches)])
        _sync(s.device)
        start = time.perf_counter()
        for i in range(s.steps):
            step(batches[i % len(batches)])
        _sync(s.device)
    return (time.perf_counter() - start) / s.steps


def count_step(name: str, s: PerfSettings, batch: int) -> tuple[int, int]:
    """(floating-point operations, dispatched operators) of one training iteration."""
    method = _method(name, s, batch, 1)
    view = _view(Supervision(method.supervision), s.device, s.channels)
    optimizer = make_optimizer(method)

    def one() -> None:
        loss = method.training_loss(view.sample(batch, method.training_crop().side), 0.0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    one()  # Adam's state is created on the first step; count a steady-state one
    with FlopCounterMode(display=False) as flops:
        one()
    activities = [torch.profiler.ProfilerActivity.CPU]
    if s.device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as prof:
        one()
        _sync(s.device)
    events = prof.events()
    if s.device.type == "cuda":
        launches = sum(1 for e in events if e.device_type == torch.autograd.DeviceType.CUDA)
    else:
        # Leaf operators actually executed (an op that calls others is not itself a kernel).
        launches = sum(1 for e in events if not e.cpu_children)
    return int(flops.get_total_flops()), launches


HOST_COPY_STEPS = 20


def count_host_copies(name: str, s: PerfSettings, batch: int) -> float | None:
    """Host-to-device copies per training step on CUDA, counted by the profiler over HOST_COPY_STEPS steps
    after the loop's first loss check (past any warm-up and recording): 0 is a step that never waits for
    the host. None off CUDA, or where the profiler sees no CUDA activity."""
    if s.device.type != "cuda":
        return None
    from torch.profiler import ProfilerActivity, profile

    profiler = profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA])
    _train_past_first_check(name, s, batch, HOST_COPY_STEPS, profiler.start)
    profiler.stop()
    events = profiler.events()
    if not any(e.device_type == torch.autograd.DeviceType.CUDA for e in events):
        return None
    return sum(1 for e in events if "HtoD" in e.name) / HOST_COPY_STEPS


def time_evaluation(s: PerfSettings) -> float:
    """Images per second of a trained-network forward pass (batch 1, ``eval_size`` squared)."""
    method = _method(PAPER_METHOD, s, 1, 1)
    y = torch.rand(1, s.channels, s.eval_size, s.eval_size, device=s.device)
    method.denoise(y)
    _sync(s.device)
    times = []
    for _ in range(s.rounds):
        start = time.perf_counter()
        method.denoise(y)
        _sync(s.device)
        times.append(time.perf_counter() - start)
    return 1.0 / min(times)


def measure(s: PerfSettings) -> dict:
    rows = []
    baseline = replace(s, engine=s.baseline) if s.baseline is not None else None
    for name in s.methods:
        for batch in s.batches:
            times, base_times = [], []
            for _ in range(s.rounds):  # interleaved, so that other load slows both engines alike
                times.append(time_suite_steps(name, s, batch))
                if baseline is not None:
                    base_times.append(time_suite_steps(name, baseline, batch))
            seconds = min(times)
            flops, launches = count_step(name, s, batch)
            peak = s.peak_tflops * 1e12 if s.peak_tflops else None
            row = {"method": name, "batch": batch, "crop": s.crop, "width": s.width,
                   "ms_per_iteration": seconds * 1e3, "iterations_per_s": 1.0 / seconds,
                   "gflop_per_iteration": flops / 1e9, "achieved_tflops": flops / seconds / 1e12,
                   "arithmetic_bound_ms": flops / peak * 1e3 if peak else None,
                   "operators_per_iteration": launches,
                   "launch_bound_ms": launches * s.launch_cost_s * 1e3}
            if base_times:
                row |= {"baseline_ms_per_iteration": min(base_times) * 1e3, "speedup": min(base_times) / seconds}
            copies = count_host_copies(name, s, batch)
            if copies is not None:
                row["host_copies_per_iteration"] = copies
            rows.append(row)
    # Suite vs bare loop, interleaved, at the first batch size.
    suite, bare = [], []
    for _ in range(s.rounds):
        bare.append(time_bare_steps(PAPER_METHOD, s, s.batches[0]))
        suite.append(time_suite_steps(PAPER_METHOD, s, s.batches[0]))
    return {
        "device": str(s.device),
        "device_name": torch.cuda.get_device_name(s.device) if s.device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        **cpu_speed_facts(),
        "settings": {k: (str(v) if isinstance(v, torch.device) else v) for k, v in asdict(s).items()},
        "engine": s.engine.as_dict(),
        "baseline_engine": s.baseline.as_dict() if s.baseline is not None else None,
        "training": rows,
        "evaluation_images_per_s": time_evaluation(s),
        "suite_vs_bare": {"method": PAPER_METHOD, "batch": s.batches[0], "suite_ms": min(suite) * 1e3,
                          "bare_ms": min(bare) * 1e3, "ratio": min(suite) / min(bare),
                          "all_suite_ms": [t * 1e3 for t in suite], "all_bare_ms": [t * 1e3 for t in bare]},
    }


def render(report: dict) -> str:
    lines = [f"# Performance: {report['device_name']} ({report['device']}, torch {report['torch']}, "
             f"{report['threads']} threads)", "",
             "Engine: " + _engine_text(report["engine"]) + ".", "",
             *_cpu_lines(report),
             "| method | batch | ms / iteration | iterations / s | GFLOP / iteration | achieved TFLOP/s | "
             "arithmetic bound (ms) | operators / iteration | launch bound (ms) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in report["training"]:
        bound = f"{r['arithmetic_bound_ms']:.3f}" if r["arithmetic_bound_ms"] is not None else "n/a (peak unknown)"
        lines.append(f"| {r['method']} | {r['batch']} | {r['ms_per_iteration']:.1f} | {r['iterations_per_s']:.2f} | "
                     f"{r['gflop_per_iteration']:.1f} | {r['achieved_tflops']:.3f} | {bound} | "
                     f"{r['operators_per_iteration']} | {r['launch_bound_ms']:.2f} |")
    if report.get("baseline_engine"):
        lines += _render_comparison(report)
    copies = [r for r in report["training"] if r.get("host_copies_per_iteration") is not None]
    if copies:
        lines += ["", "Host-to-device copies per training step (profiler, 20 steps after the first loss check; "
                      "the loop reads the loss back every 25 steps): " +
                  ", ".join(f"{r['method']} batch {r['batch']} {r['host_copies_per_iteration']:.2f}" for r in copies) + "."]
    c = report["suite_vs_bare"]
    if report["engine"]["compile"] != "off":
        lines += ["", "FLOPs and operators are counted on the eager step; a compiled step fuses operators and, with "
                      "CUDA graphs, launches the whole step at once, so the launch bound above is the eager one."]
    lines += ["", f"Crops {report['settings']['crop']}x{report['settings']['crop']}, U-Net width "
              f"{report['settings']['width']}, {report['settings']['channels']} channel(s). Evaluation: {report['evaluation_images_per_s']:.2f} images/s "
              f"at {report['settings']['eval_size']}x{report['settings']['eval_size']}.", "",
              f"Suite training loop vs a bare PyTorch loop ({c['method']}, batch {c['batch']}, fastest of "
              f"{len(c['all_suite_ms'])} interleaved rounds): {c['suite_ms']:.1f} ms vs {c['bare_ms']:.1f} ms, "
              f"ratio **{c['ratio']:.3f}**."]
    return "\n".join(lines) + "\n"


def _cpu_lines(report: dict) -> list[str]:
    """What decides the CPU's speed beside the engine: its bf16 flags and the allocator setting."""
    if report["device"] != "cpu":
        return []
    flags = ", ".join(report["cpu_bf16_flags"]) or "none"
    memory = ("kept in the process" if report["host_memory"] == "kept" else "returned to the system (C library default)")
    return [f"CPU bf16 flags: {flags}. Freed tensor memory: {memory}.", ""]


def _engine_text(engine: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in engine.items())


def _render_comparison(report: dict) -> list[str]:
    """The chosen engine beside the baseline, per training case, as measured in interleaved rounds."""
    lines = ["", f"Engine comparison, same rounds interleaved: **{_engine_text(report['engine'])}** against "
             f"**{_engine_text(report['baseline_engine'])}**.", "",
             "| method | batch | ms / iteration | baseline ms / iteration | speed-up |", "|---|---|---|---|---|"]
    for r in report["training"]:
        lines.append(f"| {r['method']} | {r['batch']} | {r['ms_per_iteration']:.1f} | "
                     f"{r['baseline_ms_per_iteration']:.1f} | {r['speedup']:.2f}x |")
    return lines


def write_report(s: PerfSettings, out: Path) -> str:
    report = measure(s)
    write_json(out / PERF_REPORT, report)
    markdown = render(report)
    write_text_atomic(out / "perf.md", markdown)
    return markdown
