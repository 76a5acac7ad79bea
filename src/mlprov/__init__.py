"""mlprov: record, sign, store and enforce the provenance of machine-learning models."""

__version__ = "0.1.0"
