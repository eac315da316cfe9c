"""The captured training step (``--capture``): on the CPU the static-buffer step it records on a GPU must
train exactly as the plain step does, for every method it serves; a method it cannot serve says why."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from denoise_bench.captured_step import CapturedStep, EagerStep, eager_form, make_step
from denoise_bench.engine import Engine
from denoise_bench.errors import BenchError
from denoise_bench.network_method import NetworkMethod
from denoise_bench.plugins import get_registry
from denoise_bench.testing import TINY_BUDGET, ConformanceSetup
from denoise_bench.training import make_optimizer, make_schedule

STEPS = 12
# The methods whose step can be recorded: every network method of the shared loop but those that say why not.
CAPTURABLE = ["unet", "n2n", "nb2nb", "b2u", "iddp"]
BUDGET = dataclasses.replace(TINY_BUDGET, iterations=STEPS, crop_size=32, batch_size=2, lr_scale=3.3)


def _trajectory(name: str, step_class: type[EagerStep]) -> tuple[list[float], list[float], dict[str, torch.Tensor]]:
    """Losses, rates and final weights of STEPS steps of ``name`` with the warm-up + cosine schedule."""
    setup = ConformanceSetup(get_registry().method(name), budget=BUDGET)
    method = setup.make(seed=3)
    assert isinstance(method, NetworkMethod)
    view = setup.view(seed=3)
    optimizer = make_optimizer(method)
    schedule = make_schedule(method, optimizer, STEPS, view)
    args = (method, view, optimizer, BUDGET.batch_size, method.training_crop().side)
    step = CapturedStep(*args, log=print) if step_class is CapturedStep else EagerStep(*args)
    losses, rates = [], []
    for i in range(STEPS):
        losses.append(float(step(i / STEPS).detach()))
        rates.append(float(optimizer.param_groups[0]["lr"]))
        schedule.step()
    return losses, rates, {k: v.clone() for k, v in method.net.state_dict().items()}


@pytest.mark.parametrize("name", CAPTURABLE)
def test_the_static_buffer_step_trains_as_the_plain_step(name: str) -> None:
    plain_losses, plain_rates, plain_weights = _trajectory(name, EagerStep)
    static_losses, static_rates, static_weights = _trajectory(name, CapturedStep)
    assert static_rates == pytest.approx(plain_rates, rel=1e-6)
    assert len(set(plain_rates)) > 2  # the schedule moved the rate, through the device tensor too
    assert static_losses == pytest.approx(plain_losses, rel=1e-5, abs=1e-7)
    for key, weight in plain_weights.items():
        torch.testing.assert_close(static_weights[key], weight, rtol=1e-5, atol=1e-6, msg=lambda m: f"{name} {key}: {m}")
    first = next(iter(plain_weights.values()))
    fresh = ConformanceSetup(get_registry().method(name), budget=BUDGET).make(seed=3).net.state_dict()
    assert not torch.equal(next(iter(fresh.values())), first)  # the steps did move the weights


def test_a_run_trained_with_the_captured_step_matches_the_plain_run() -> None:
    """Through ``train`` (the step chosen by the engine), with a checkpoint written in the plain form."""
    weights = {}
    for capture in (False, True):
        method = ConformanceSetup(get_registry().method("n2n"), budget=BUDGET, engine=Engine(capture=capture)).fitted(seed=1)
        weights[capture] = method.net.state_dict()
    for key, weight in weights[False].items():
        torch.testing.assert_close(weights[True][key], weight, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["n2v", "cvf-sid"])
def test_a_method_that_cannot_be_captured_trains_eagerly_and_says_why(name: str) -> None:
    method_class = get_registry().method(name)
    assert method_class.capture_unsupported
    setup = ConformanceSetup(method_class, budget=BUDGET, engine=Engine(capture=True))
    method = setup.make()
    view = setup.view()
    said: list[str] = []
    step = make_step(method, view, make_optimizer(method), 2, method.training_crop().side, said.append)
    assert type(step) is EagerStep
    assert said == [f"{name}: training step not captured: {method_class.capture_unsupported}; training eagerly"]


def test_capturable_methods_get_the_captured_step() -> None:
    setup = ConformanceSetup(get_registry().method("iddp"), budget=BUDGET, engine=Engine(capture=True))
    method = setup.make()
    said: list[str] = []
    assert type(make_step(method, setup.view(), make_optimizer(method), 2, 32, said.append)) is CapturedStep
    assert said == []


def test_a_captured_runs_optimizer_state_is_saved_in_the_plain_form() -> None:
    method = ConformanceSetup(get_registry().method("unet"), budget=BUDGET).make()
    setup = ConformanceSetup(get_registry().method("unet"), budget=BUDGET)
    optimizer = make_optimizer(method)
    step = CapturedStep(method, setup.view(), optimizer, 2, 32, log=print)
    step(0.0)
    state = eager_form(optimizer.state_dict())
    assert all(type(group["lr"]) is float and group["capturable"] is False for group in state["param_groups"])
    plain = make_optimizer(ConformanceSetup(get_registry().method("unet"), budget=BUDGET).make())
    plain.load_state_dict(state)  # and the plain step takes it
    assert type(plain.param_groups[0]["lr"]) is float


def test_capture_and_compiled_graphs_do_not_combine() -> None:
    with pytest.raises(BenchError, match="does not combine with --compile reduce-overhead"):
        Engine(capture=True, compile="reduce-overhead")


def test_the_engine_records_capture_only_when_on() -> None:
    assert "capture" not in Engine().as_dict()  # a plain run's engine reads as before the option existed
    assert Engine(capture=True).as_dict()["capture"] is True


def test_a_method_reading_progress_names_it_in_its_graph_key() -> None:
    """A key that changes is what makes a recorded step record again: IDDP's warm start ends, B2U's lambda grows."""
    budget = dataclasses.replace(BUDGET, iterations=100)
    iddp = ConformanceSetup(get_registry().method("iddp"), budget=budget, options={"warm_start": "box3:10"}).make()
    assert iddp.graph_key(0.05) != iddp.graph_key(0.5)
    b2u = ConformanceSetup(get_registry().method("b2u"), budget=budget).make()
    assert b2u.graph_key(0.0) != b2u.graph_key(0.99)
