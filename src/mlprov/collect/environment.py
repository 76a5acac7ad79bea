"""The machine and software a step ran on: Python, platform, packages, frameworks, hardware.

Nothing here imports an ML framework (importing torch takes seconds): versions come from
installed distribution metadata. GPUs come from `nvidia-smi` when present; its absence
is recorded with the reason. The hostname is recorded only when asked.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

from mlprov.statement import ResourceDescriptor

#: Distributions reported as frameworks (internalParameters.frameworks) when installed.
FRAMEWORKS = (
    "torch",
    "jax",
    "jaxlib",
    "tensorflow",
    "keras",
    "transformers",
    "accelerate",
    "safetensors",
    "scikit-learn",
    "numpy",
)
NVIDIA_SMI_TIMEOUT = 20


def normalize_name(name: str) -> str:
    """PEP 503 normalised distribution name (also the purl `pkg:pypi` name form)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_distributions() -> dict[str, str]:
    """Normalised name -> version of every distribution importable by this interpreter."""
    found: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"] if dist.metadata else None
        if name and dist.version:
            found.setdefault(normalize_name(name), dist.version)
    return dict(sorted(found.items()))


def package_descriptors(distributions: dict[str, str]) -> list[ResourceDescriptor]:
    """Each distribution as `pkg:pypi/NAME@VERSION` (a resolvedDependency)."""
    return [
        ResourceDescriptor(
            name=name, uri=f"pkg:pypi/{name}@{version}", annotations={"role": "package"}
        )
        for name, version in distributions.items()
    ]


def cpu_model() -> str | None:
    """The CPU's model name (from /proc/cpuinfo on Linux, else the platform's answer)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip() or None
    except OSError:
        pass
    return platform.processor() or None


def _cpu_count() -> int | None:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count()


def collect_gpus(*, nvidia_smi: str | None = None) -> dict[str, Any]:
    """GPU models, count, driver and CUDA version from nvidia-smi; `{"absent": why}` if none."""
    executable = nvidia_smi or shutil.which("nvidia-smi")
    if executable is None:
        return {"absent": "nvidia-smi not found"}
    try:
        query = subprocess.run(
            [
                executable,
                "--query-gpu=name,driver_version,memory.total",
                "--format=csv,noheader,nounits",
            ],
            capture_output=True,
            timeout=NVIDIA_SMI_TIMEOUT,
            check=False,
        )
        banner = subprocess.run(
            [executable], capture_output=True, timeout=NVIDIA_SMI_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"absent": f"nvidia-smi failed: {exc}"}
    if query.returncode != 0:
        reason = query.stderr.decode(errors="replace").strip().splitlines()
        return {"absent": f"nvidia-smi failed: {reason[0] if reason else query.returncode}"}
    models, drivers, memory = [], set(), []
    for line in query.stdout.decode(errors="replace").splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 3 and parts[0]:
            models.append(parts[0])
            drivers.add(parts[1])
            memory.append(parts[2])
    if not models:
        return {"absent": "nvidia-smi lists no GPUs"}
    info: dict[str, Any] = {
        "count": len(models),
        "models": models,
        "driverVersion": ", ".join(sorted(drivers)),
        "memoryMiB": memory,
    }
    cuda = re.search(rb"CUDA Version:\s*([0-9.]+)", banner.stdout)
    if cuda:
        info["cudaVersion"] = cuda.group(1).decode()
    return info


@dataclass
class Environment:
    """Facts about the interpreter and machine, split as SLSA wants them."""

    python: dict[str, str]
    platform: dict[str, str]
    frameworks: dict[str, str]
    hardware: dict[str, Any]
    hostname: str | None = None
    packages: dict[str, str] = field(default_factory=dict)

    def internal_parameters(self) -> dict[str, Any]:
        """The internalParameters part: everything but the package list."""
        out: dict[str, Any] = {
            "python": self.python,
            "platform": self.platform,
            "frameworks": self.frameworks,
            "hardware": self.hardware,
        }
        if self.hostname is not None:
            out["hostname"] = self.hostname
        return out


def collect_environment(
    *, record_host: bool = False, record_packages: bool = True, nvidia_smi: str | None = None
) -> Environment:
    """Collect the environment; `record_host` adds the hostname, `record_packages` the purls."""
    distributions = installed_distributions()
    return Environment(
        python={
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": os.path.basename(sys.executable),
        },
        platform={
            "system": platform.system(),
            "release": platform.release(),
            "machine": platform.machine(),
        },
        frameworks={n: distributions[n] for n in FRAMEWORKS if n in distributions},
        hardware={
            "cpu": {"model": cpu_model() or "unknown", "count": _cpu_count() or 0},
            "gpu": collect_gpus(nvidia_smi=nvidia_smi),
        },
        hostname=socket.gethostname() if record_host else None,
        packages=distributions if record_packages else {},
    )
