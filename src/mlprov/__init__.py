"""mlprov: record, sign, store and enforce the provenance of machine-learning models.

`import mlprov` is light (every CLI call pays for it): the API below is imported from
`mlprov.api` on first use (PEP 562), with everything it needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from mlprov.api import TrainingRun, evaluation_statement

#: Public names and the module each is imported from when first used.
_LAZY = {"TrainingRun": "mlprov.api", "evaluation_statement": "mlprov.api"}

__all__ = ["TrainingRun", "__version__", "evaluation_statement"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'mlprov' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
