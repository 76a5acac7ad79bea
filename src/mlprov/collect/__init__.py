"""Collectors: facts about a run (datasets, config, code, environment, builder), offline.

Each collector reads one kind of fact and returns plain data or ResourceDescriptors;
`mlprov.api.TrainingRun` assembles them into a Statement.
"""

from mlprov.collect.artifacts import DescribedPath, describe_path, parse_digest, split_uri_digest
from mlprov.collect.builder import BuilderIdentity, detect_builder, parse_timestamp, utc_now
from mlprov.collect.config import ConfigRecord, load_config, parse_overrides, parse_value
from mlprov.collect.datasets import DatasetRecord, describe_dataset
from mlprov.collect.environment import Environment, collect_environment, collect_gpus
from mlprov.collect.git import GitSource, collect_git, strip_credentials
from mlprov.collect.hf import HubSnapshot, hub_snapshot, parse_hub_uri, resolve_hub_uri

__all__ = [
    "BuilderIdentity",
    "ConfigRecord",
    "DatasetRecord",
    "DescribedPath",
    "Environment",
    "GitSource",
    "HubSnapshot",
    "collect_environment",
    "collect_git",
    "collect_gpus",
    "describe_dataset",
    "describe_path",
    "detect_builder",
    "hub_snapshot",
    "load_config",
    "parse_digest",
    "parse_hub_uri",
    "parse_overrides",
    "parse_timestamp",
    "parse_value",
    "resolve_hub_uri",
    "split_uri_digest",
    "strip_credentials",
    "utc_now",
]
