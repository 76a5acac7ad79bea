"""mlprov: record, sign, store and enforce the provenance of machine-learning models."""

__version__ = "0.1.0"

from mlprov.api import TrainingRun, evaluation_statement

__all__ = ["TrainingRun", "__version__", "evaluation_statement"]
