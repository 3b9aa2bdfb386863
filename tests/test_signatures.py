"""The shape of colorlib's public API: no public function takes more than 8 parameters.

A function with more settings than that groups them in a small dataclass (e.g.
:class:`colorlib.inference.evaluate.EvalSettings`, :class:`colorlib.models.stages.AdamSettings`).
Counted with ``inspect`` on every public function and method of every module (``self``/``cls``
left out). The ``__init__`` that ``@dataclass`` writes is not counted: a settings dataclass is
the grouping, read field by field. No class is over 200 lines either.
"""
from __future__ import annotations

import importlib
import inspect
import pkgutil

import colorlib

MAX_PARAMETERS = 8
MAX_CLASS_LINES = 200


def public_modules():
    for info in sorted(pkgutil.walk_packages(colorlib.__path__, "colorlib."), key=lambda i: i.name):
        if info.name.rsplit(".", 1)[-1] == "__main__":  # importing it runs the command line
            continue
        yield importlib.import_module(info.name)


def _written_here(func, module) -> bool:
    """A function whose code is in ``module``'s file (not one ``@dataclass`` generated)."""
    code = getattr(inspect.unwrap(func), "__code__", None)
    return code is not None and code.co_filename == module.__file__


def public_classes():
    for module in public_modules():
        for name, obj in vars(module).items():
            if inspect.isclass(obj) and not name.startswith("_") and obj.__module__ == module.__name__:
                yield module, name, obj


def public_callables():
    """(qualified name, function) for every public function and method defined in colorlib."""
    for module in public_modules():
        for name, obj in vars(module).items():
            if (inspect.isfunction(obj) and not name.startswith("_")
                    and obj.__module__ == module.__name__):
                yield f"{module.__name__}.{name}", obj
    for module, cls_name, cls in public_classes():
        for name, attr in vars(cls).items():
            if name.startswith("_") and not (name.startswith("__") and name.endswith("__")):
                continue
            func = attr.__func__ if isinstance(attr, (classmethod, staticmethod)) else attr
            if inspect.isfunction(func) and _written_here(func, module):
                yield f"{module.__name__}.{cls_name}.{name}", func


def parameter_count(func) -> int:
    params = list(inspect.signature(func).parameters)
    return len([p for p in params if p not in ("self", "cls")])


def test_no_public_function_takes_more_than_8_parameters():
    checked = list(public_callables())
    assert len(checked) > 200, "the scan found too few functions: is it looking in colorlib?"
    over = sorted(f"{name}: {n} parameters" for name, func in checked
                  if (n := parameter_count(func)) > MAX_PARAMETERS)
    assert not over, (f"public functions over {MAX_PARAMETERS} parameters (group settings in a "
                      "dataclass):\n" + "\n".join(over))


def test_the_count_leaves_out_self_and_what_dataclass_writes():
    from colorlib.inference.evaluate import EvalSettings
    from colorlib.models.pix2pix import Pix2Pix
    from colorlib.training.loop import Trainer

    assert parameter_count(Trainer.fit) == 6  # loader ... on_error; self is not counted
    assert parameter_count(Pix2Pix.__init__) == 7
    names = {name for name, _ in public_callables()}
    assert "colorlib.training.loop.Trainer.fit" in names
    assert "colorlib.training.config.TrainConfig.adam" in names
    assert "colorlib.inference.evaluate.EvalSettings.__init__" not in names  # written by @dataclass
    assert "colorlib.inference.evaluate.evaluate_paths" in names and EvalSettings().max_side is None


def class_lengths() -> dict[str, int]:
    lengths = {}
    for module, name, cls in public_classes():
        try:
            lines, _ = inspect.getsourcelines(cls)
        except (OSError, TypeError):
            continue
        lengths[f"{module.__name__}.{name}"] = len(lines)
    return lengths


def test_no_class_is_over_200_lines():
    """A class on one screen or two: the loop (Trainer) included (issue 21)."""
    lengths = class_lengths()
    assert "colorlib.training.loop.Trainer" in lengths and len(lengths) > 30
    over = {name: n for name, n in sorted(lengths.items()) if n > MAX_CLASS_LINES}
    assert not over, "classes over %d lines (split them): %s" % (
        MAX_CLASS_LINES, ", ".join(f"{name} ({n} lines)" for name, n in over.items()))
