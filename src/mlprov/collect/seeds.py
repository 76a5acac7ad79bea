"""Seeds a training script sets, observed while a run is open: Python's `random.seed`,
NumPy's `numpy.random.seed` / `default_rng(seed)`, `torch.manual_seed` and JAX's
`jax.random.PRNGKey` / `jax.random.key`.

Only libraries already imported when the run starts are watched (a library the script
does not use is never imported), and only integer seeds are recorded: a call without a
seed (seeded from the OS) or with a non-integer seed records nothing, so no value is ever
invented. The wrapped functions behave exactly as before and are restored when the run
ends.
"""

from __future__ import annotations

import importlib
import operator
import sys
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

#: (module, attribute, seed name recorded, position of the seed argument, its keyword).
WATCHED: tuple[tuple[str, str, str, int, str], ...] = (
    ("random", "seed", "python.random", 0, "a"),
    ("numpy.random", "seed", "numpy.random", 0, "seed"),
    ("numpy.random", "default_rng", "numpy.default_rng", 0, "seed"),
    ("torch", "manual_seed", "torch", 0, "seed"),
    ("jax.random", "PRNGKey", "jax", 0, "seed"),
    ("jax.random", "key", "jax", 0, "seed"),
)

Recorder = Callable[[str, int], None]

_lock = threading.Lock()
_recorders: list[Recorder] = []
_originals: dict[tuple[str, str], Any] = {}


def _integer_seed(value: Any) -> int | None:
    """The seed as an int, if it is one (NumPy integers too; a SeedSequence's int entropy)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    entropy = getattr(value, "entropy", None)  # numpy.random.SeedSequence
    if isinstance(entropy, int) and not isinstance(entropy, bool):
        return entropy
    if type(value).__module__.startswith("numpy"):  # numpy.int64 and friends
        try:
            return operator.index(value)
        except TypeError:
            return None
    return None


def _wrap(original: Any, name: str, position: int, keyword: str) -> Any:
    def observed(*args: Any, **kwargs: Any) -> Any:
        value = args[position] if len(args) > position else kwargs.get(keyword)
        seed = _integer_seed(value)
        if seed is not None:
            with _lock:
                recorders = list(_recorders)
            for record in recorders:
                record(name, seed)
        return original(*args, **kwargs)

    observed.__wrapped__ = original  # type: ignore[attr-defined]
    observed.__name__ = getattr(original, "__name__", "observed")
    observed.__doc__ = getattr(original, "__doc__", None)
    return observed


def _imported(name: str) -> ModuleType | None:
    """The module if its package is imported: `numpy.random` once `numpy` is (NumPy loads
    its submodules lazily, on first use); None if the package is not imported at all."""
    if name.split(".")[0] not in sys.modules:
        return None
    try:
        return importlib.import_module(name)
    except Exception:  # a broken or partial install: nothing to watch
        return None


def watch(record: Recorder) -> None:
    """Start calling `record(name, seed)` for each integer seed set through a watched
    function of an already imported module."""
    with _lock:
        _recorders.append(record)
        if len(_recorders) > 1:
            return
        for module_name, attribute, name, position, keyword in WATCHED:
            module = _imported(module_name)
            original = getattr(module, attribute, None) if module is not None else None
            if original is None or not callable(original):
                continue
            _originals[(module_name, attribute)] = original
            setattr(module, attribute, _wrap(original, name, position, keyword))


def unwatch(record: Recorder) -> None:
    """Stop calling `record`; the originals are restored when no run watches any more."""
    with _lock:
        if record in _recorders:
            _recorders.remove(record)
        if _recorders:
            return
        for (module_name, attribute), original in _originals.items():
            module = sys.modules.get(module_name)
            if module is not None:
                setattr(module, attribute, original)
        _originals.clear()
