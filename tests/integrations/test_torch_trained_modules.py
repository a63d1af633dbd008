"""Plain PyTorch loops: the trained model is found from the stack of the first
optimizer step (locals, globals, their items and attributes), with the heap
scan's answer; the heap is scanned only when the stack does not hold every
trained parameter."""

from __future__ import annotations

import sys
import weakref

import pytest

torch = pytest.importorskip("torch")

import autolog  # noqa: E402
from autolog.integrations import torch as torch_integration  # noqa: E402
from tests.integrations.runs import artifact_names, only_run  # noqa: E402
from tests.integrations.test_torch import Net  # noqa: E402


class Box:
    """A plain object holding things as attributes."""


def _loader():
    from torch.utils.data import DataLoader, TensorDataset

    g = torch.Generator().manual_seed(0)
    X = torch.randn(32, 4, generator=g)
    return DataLoader(TensorDataset(X, X.sum(dim=1, keepdim=True)), batch_size=16)


def _steps(optimizer, loader, model_call) -> None:
    for x, y in loader:
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model_call(x), y).backward()
        optimizer.step()


@pytest.fixture
def heap_scans(monkeypatch) -> list[int]:
    """One entry per scan of the heap for modules."""
    scans: list[int] = []
    original = torch_integration._heap_modules

    def counted():
        scans.append(1)
        return original()

    monkeypatch.setattr(torch_integration, "_heap_modules", counted)
    return scans


_HEAP_MODULES = torch_integration._heap_modules  # not the counted one


def _heap_answer(held: set[int]) -> list:
    """What a scan of the whole heap finds, for comparison."""
    return torch_integration._outermost(_HEAP_MODULES(), held)


def _held(*modules) -> set[int]:
    return {id(p) for m in modules for p in m.parameters()}


def _tracked_modules() -> list:
    from autolog._registry import registry

    return registry.states["torch"].integration.tracker().modules


class Trainer:
    """A loop whose model only ever lives as an attribute of the trainer."""

    def __init__(self) -> None:
        torch.manual_seed(0)
        self.model = Net()
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.1)

    def fit(self, loader) -> list:
        _steps(self.optimizer, loader, lambda x: self.model(x))  # no local holds the model
        return list(_tracked_modules())


def test_a_model_held_only_as_an_attribute_of_an_object_is_found_without_a_heap_scan(
    heap_scans,
):
    autolog.autolog("torch")
    trainer = Trainer()
    found = trainer.fit(_loader())
    assert found == [trainer.model] == _heap_answer(_held(trainer.model))
    assert heap_scans == []
    autolog.end_run()
    assert "model" in artifact_names(only_run())


def _inner_loop(optimizer, loader, call) -> list:
    _steps(optimizer, loader, call)
    return list(_tracked_modules())


def _middle(optimizer, loader, call) -> list:
    return _inner_loop(optimizer, loader, call)


def _outer() -> tuple[list, object]:
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    forward = weakref.WeakMethod(model.forward)  # the loop below holds no strong reference
    found = _middle(optimizer, _loader(), lambda x: forward()(x))
    return found, model


def test_a_model_only_a_caller_several_frames_up_holds_is_found_without_a_heap_scan(heap_scans):
    autolog.autolog("torch")
    found, model = _outer()
    assert found == [model]
    assert heap_scans == []
    autolog.end_run()
    assert "model" in artifact_names(only_run())


def test_a_wrapper_alone_on_the_stack_gives_its_inner_module(heap_scans):
    net = Net()
    wrapped = torch.nn.DataParallel(net)  # on the CPU it only calls net
    held = _held(wrapped)
    del net
    assert torch_integration.trained_modules(held) == [wrapped.module] == _heap_answer(held)
    assert heap_scans == []


_UNREACHABLE: dict = {}  # a global the stack reaches, but not two levels into it


def test_an_inner_module_alone_on_the_stack_is_the_answer_for_its_wrapper_too(heap_scans):
    net = Net()
    _UNREACHABLE["wrappers"] = {"dp": torch.nn.DataParallel(net)}  # two levels deep
    try:
        held = _held(net)
        assert torch_integration.trained_modules(held) == [net] == _heap_answer(held)
        assert heap_scans == []
    finally:
        _UNREACHABLE.clear()


def test_models_in_a_list_and_a_dict_on_the_stack_are_found_largest_first(heap_scans):
    small, big = torch.nn.Linear(2, 1), Net()
    models = [small]
    by_name = {"big": big}
    del small, big
    held = _held(*models, *by_name.values())
    found = torch_integration.trained_modules(held)
    assert found == [by_name["big"], models[0]] == _heap_answer(held)
    assert heap_scans == []


def test_a_model_the_stack_does_not_reach_is_found_by_scanning_the_heap(heap_scans):
    box = Box()
    box.inner = Box()
    box.inner.model = Net()  # two attributes deep: not looked at on the stack
    held = _held(box.inner.model)
    on_stack = torch_integration._stack_modules(sys._getframe())
    assert torch_integration._outermost(on_stack, held) == []
    assert torch_integration.trained_modules(held) == [box.inner.model]
    assert heap_scans == [1]


def test_a_second_model_the_stack_does_not_reach_makes_the_heap_answer(heap_scans):
    seen = Net()
    box = Box()
    box.inner = Box()
    box.inner.model = torch.nn.Linear(3, 3)
    held = _held(seen, box.inner.model)
    assert torch_integration.trained_modules(held) == [seen, box.inner.model]
    assert heap_scans == [1]


def test_plain_tensors_trained_beside_or_without_a_model_need_no_heap_scan(heap_scans):
    autolog.autolog("torch")
    model = torch.nn.Linear(4, 1)
    temperature = torch.ones((), requires_grad=True)  # no module holds a plain tensor
    optimizer = torch.optim.SGD([*model.parameters(), temperature], lr=0.1)
    _steps(optimizer, _loader(), lambda x: model(x) * temperature)
    assert _tracked_modules() == [model]
    autolog.end_run()

    w = torch.zeros(4, 1, requires_grad=True)
    optimizer = torch.optim.SGD([w], lr=0.1)
    _steps(optimizer, _loader(), lambda x: x @ w)
    assert _tracked_modules() == []
    assert heap_scans == []
    autolog.end_run()


def test_a_parameter_outside_the_stacks_modules_still_makes_the_heap_scan(heap_scans):
    box = Box()
    box.inner = Box()
    box.inner.model = torch.nn.Linear(2, 2)
    stray = box.inner.model.weight  # a Parameter: some module may hold it
    model = Net()
    held = _held(model) | {id(stray)}
    assert torch_integration.trained_modules(held) == [model]  # Linear's bias is not trained
    assert heap_scans == [1]


def _scan_from_the_caller() -> None:
    torch_integration._stack_modules(sys._getframe(1))


def test_reading_the_stack_keeps_no_local_of_a_function_alive():
    local = Box()
    gone = weakref.ref(local)
    model = Net()
    _scan_from_the_caller()
    del local  # the function goes on; its snapshot of locals must not hold the Box
    assert gone() is None
    assert model is not None


def test_reading_the_stack_leaves_a_locals_dict_the_function_kept_intact():
    lr, epochs = 0.1, 3
    hyperparameters = locals()  # before 3.13 the frame's own snapshot dict
    _scan_from_the_caller()
    assert hyperparameters["lr"] == 0.1 and hyperparameters["epochs"] == 3


class _NoDict:
    @property
    def __dict__(self):  # an object that will not show its attributes
        raise RuntimeError("not telling")


class _Unreadable(type):
    @property
    def __module__(cls):
        raise RuntimeError("a class that will not say where it lives")


def test_objects_that_will_not_be_read_neither_stop_nor_spoil_the_search(heap_scans):
    secretive = _NoDict()
    model = Net()
    held = _held(model)
    assert torch_integration.trained_modules(held) == [model]
    assert heap_scans == []  # the object was skipped, the stack's answer kept

    odd = _Unreadable("Odd", (), {})()  # reading its class fails: the heap answers
    assert torch_integration.trained_modules(held) == [model]
    assert heap_scans == [1]
    assert secretive is not None and odd is not None
