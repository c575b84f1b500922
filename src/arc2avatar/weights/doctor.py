"""What ``arc2avatar doctor`` reports: every weight file's state and the compute environment.

Written by hand (a report, no library does this). Nothing here loads a model or compiles a
kernel: gsplat is looked up with ``importlib`` (never imported: importing may start a JIT build).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import dataclass, field

from arc2avatar.weights.integrity import human_size
from arc2avatar.weights.resolver import DEMO_HINT, FileStatus, WeightsConfig, check_weights


@dataclass(frozen=True)
class EnvironmentReport:
    """The compute environment as arc2avatar sees it.

    Attributes:
        torch_version: ``torch.__version__``.
        cuda_devices: one ``"name, 79.6 GB"`` line per visible CUDA device (empty on CPU).
        gsplat: ``"not installed"`` or ``"<version> (prebuilt CUDA kernels|kernels built on
            first use)"``.
        onnxruntime_providers: onnxruntime's available execution providers (empty if absent).
    """

    torch_version: str
    cuda_devices: list[str] = field(default_factory=list)
    gsplat: str = "not installed"
    onnxruntime_providers: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DoctorReport:
    """Weight files (``FileStatus`` each) and the environment; ``ok`` = every file usable."""

    root: str
    files: list[FileStatus]
    environment: EnvironmentReport

    @property
    def ok(self) -> bool:
        return all(s.usable for s in self.files)


def _gsplat_state() -> str:
    if importlib.util.find_spec("gsplat") is None:
        return "not installed"
    try:
        version = importlib.metadata.version("gsplat")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown version"
    try:
        prebuilt = importlib.util.find_spec("gsplat.csrc") is not None
    except (ImportError, ValueError):
        prebuilt = False
    return f"{version} ({'prebuilt CUDA kernels' if prebuilt else 'kernels built on first use'})"


def environment_report() -> EnvironmentReport:
    """Probe torch, CUDA, gsplat (lookup only) and onnxruntime."""
    import torch

    devices = []
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            devices.append(f"cuda:{index} {props.name}, {human_size(props.total_memory)}")
    try:
        import onnxruntime
        providers = list(onnxruntime.get_available_providers())
    except ImportError:
        providers = []
    return EnvironmentReport(torch.__version__, devices, _gsplat_state(), providers)


def doctor_report(config: WeightsConfig) -> DoctorReport:
    """Check every weight file (all groups) and the environment."""
    return DoctorReport(str(config.local_root()), check_weights(config), environment_report())


STATE_LABELS = {"found": "found", "missing": "MISSING", "truncated": "WRONG SIZE",
                "nested": "nested (ok)"}


def format_report(report: DoctorReport) -> str:
    """Human-readable table of ``report``."""
    width = max(len(s.name) for s in report.files) if report.files else 10
    lines = [f"weights folder: {report.root}", ""]
    lines.append(f"{'file':<{width}}  {'state':<12} {'size':>9}  group")
    for s in report.files:
        size = human_size(s.size) if s.size else "-"
        lines.append(f"{s.name:<{width}}  {STATE_LABELS[s.state]:<12} {size:>9}  {s.group}")
        if s.state == "truncated":
            lines.append(f"{'':<{width}}    {s.path}: {s.detail}; re-download it")
        elif s.state == "nested":
            lines.append(f"{'':<{width}}    in {s.path.parent} (antelopev2 zip nesting; works, "
                         "may be flattened)")
    env = report.environment
    lines += [
        "",
        f"torch:        {env.torch_version}",
        f"CUDA:         {'; '.join(env.cuda_devices) if env.cuda_devices else 'no CUDA device'}",
        f"gsplat:       {env.gsplat}",
        f"onnxruntime:  {', '.join(env.onnxruntime_providers) or 'not installed'}",
        "",
    ]
    n_bad = sum(not s.usable for s in report.files)
    lines.append("all weight files present" if report.ok else
                 f"{n_bad} weight file(s) missing or broken: run "
                 f"`arc2avatar weights download --to {report.root}`\n{DEMO_HINT}")
    return "\n".join(lines)
