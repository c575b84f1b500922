"""Find (or fetch) every weight file arc2avatar needs and hand loaders a ``WeightsPaths``.

Spec §1–§2, docs/method.md §2.5. Three sources, one answer:

* a local folder in any of the official layouts (see ``COMPONENTS``):
  ``root/arc2face/``, ``root/encoder/``, ``root/arcface.onnx``, the antelopev2 detector in
  ``root/antelopev2/`` (or the nested ``antelopev2/antelopev2/`` the zip unpacks to, or
  ``models/antelopev2/``), and SD-1.5's ``vae/ tokenizer/ text_encoder/ scheduler/`` in the root
  or under ``root/stable-diffusion-v1-5/``;
* the Hugging Face Hub (``download_weights``, through ``huggingface_hub.hf_hub_download``), which
  writes that same layout;
* tiny test weights written by the tests in that layout (``arc2avatar.testing.identity_weights``).

Everything missing is reported at once, in ONE ``MissingWeightsError`` naming the files and the
command that fetches them, before any model is loaded. Truncated files are caught by cheap
header checks (``weights/integrity.py``).

Written by hand: the layout search and the messages (no library knows these layouts); downloading
itself is ``huggingface_hub``'s.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Literal

from arc2avatar.errors import MissingWeightsError
from arc2avatar.weights.integrity import check_file
from arc2avatar.weights.layout import WeightsPaths
from arc2avatar.weights.network import (
    HubProbeConfig,
    MissingFile,
    file_url,
    hub_endpoint,
    is_network_error,
    offline_message,
    probe_hub,
)

log = logging.getLogger(__name__)

ENV_WEIGHTS_ROOT = "ARC2AVATAR_WEIGHTS"
DEFAULT_WEIGHTS_ROOT = Path("~/.cache/arc2avatar/weights")
# Download staging folder inside the weights root (huggingface_hub's local_dir).
STAGING_DIR = ".download"

Group = Literal["prior", "identity", "detector"]
ALL_GROUPS: frozenset[str] = frozenset({"prior", "identity", "detector"})
FileState = Literal["found", "missing", "truncated", "nested"]


@dataclass(frozen=True)
class WeightsConfig:
    """Where weights are looked for and which Hub snapshots they come from (docs/method.md §1–§2).

    Attributes:
        root: local weights folder. ``None`` -> env ``ARC2AVATAR_WEIGHTS`` ->
            ``~/.cache/arc2avatar/weights`` (see ``local_root``).
        arc2face_repo, arc2face_revision: Hub model repo with ``arc2face/``, ``encoder/`` and
            ``arcface.onnx`` (docs/method.md §2.5). The revision is a commit seen pinned
            for ``arcface.onnx`` in public download scripts; that ``arc2face/`` and ``encoder/``
            sit in the same commit is assumed (they were published together), not verified.
        sd_repo, sd_revision: Stable Diffusion 1.5 (VAE, tokenizer, CLIP text encoder, scheduler
            config; docs/method.md §2). Commit widely used as the snapshot of this repo.
        detector_repo, detector_revision, detector_filename: a Hub copy of insightface's
            antelopev2 SCRFD-10GF detector (docs/method.md §1); the official release downloads it from
            ``lithiumice/insightface`` (docs/official-code.md §1.1). Commit seen pinned for this
            exact file (with a sha256) in public download scripts.
        lora: optional multi-view LoRA file (``pytorch_lora_weights.safetensors``, docs/method.md §8);
            checked and passed on when set.
    """

    root: Path | None = None
    arc2face_repo: str = "FoivosPar/Arc2Face"
    arc2face_revision: str = "da2f1e9aa3954dad093213acfc9ae75a68da6ffd"
    sd_repo: str = "stable-diffusion-v1-5/stable-diffusion-v1-5"
    sd_revision: str = "f03de327dd89b501a01da37fc5240cf4fdba85a1"
    detector_repo: str = "lithiumice/insightface"
    detector_revision: str = "1141cd22e2bff0d4036d10ba4151903605a8902d"
    detector_filename: str = "models/antelopev2/scrfd_10g_bnkps.onnx"
    lora: Path | None = None

    def local_root(self) -> Path:
        """The local weights folder: ``root`` > env ``ARC2AVATAR_WEIGHTS`` > the default cache."""
        if self.root is not None:
            return Path(self.root).expanduser()
        env = os.environ.get(ENV_WEIGHTS_ROOT)
        if env:
            return Path(env).expanduser()
        return DEFAULT_WEIGHTS_ROOT.expanduser()


@dataclass(frozen=True)
class Component:
    """One folder/file a loader takes (one ``WeightsPaths`` field) and how to find and fetch it.

    Attributes:
        attr: the ``WeightsPaths`` attribute it fills.
        group: ``"prior"`` | ``"identity"`` | ``"detector"``.
        bases: candidate folders relative to the root, in preference order; ``""`` = the root.
        files: file names inside the chosen base (relative to it); each must exist and be whole.
        alternatives: for a file name in ``files``, other names that serve instead
            (e.g. ``model.safetensors`` for ``pytorch_model.bin``).
        nested_bases: bases that work but are a known packaging pitfall (reported "nested").
        is_folder: the loader takes the base folder (``True``) or the single file (``False``).
        hub: ``"arc2face"`` | ``"sd"`` | ``"detector"``: which repo of ``WeightsConfig`` holds it.
        hub_prefix: path of ``files`` inside that repo; ``download_base``: where a download
            puts the base relative to the root.
    """

    attr: str
    group: str
    bases: tuple[str, ...]
    files: tuple[str, ...]
    is_folder: bool
    hub: str
    hub_prefix: str
    download_base: str
    alternatives: dict[str, tuple[str, ...]] = field(default_factory=dict)
    nested_bases: tuple[str, ...] = ()


_SD_BASES = ("", "stable-diffusion-v1-5")
_ANTELOPE_BASES = ("antelopev2", "antelopev2/antelopev2", "models/antelopev2")

# The official layouts (docs/method.md §2.5; docs/official-code.md §1.1). One place.
COMPONENTS: tuple[Component, ...] = (
    Component("arc2face_unet", "prior", ("arc2face",),
              ("config.json", "diffusion_pytorch_model.safetensors"),
              True, "arc2face", "arc2face/", "arc2face"),
    Component("arc2face_encoder", "prior", ("encoder",), ("config.json", "pytorch_model.bin"),
              True, "arc2face", "encoder/", "encoder",
              alternatives={"pytorch_model.bin": ("model.safetensors",)}),
    Component("sd_vae", "prior", tuple(f"{b}/vae".lstrip("/") for b in _SD_BASES),
              ("config.json", "diffusion_pytorch_model.safetensors"),
              True, "sd", "vae/", "stable-diffusion-v1-5/vae"),
    Component("sd_tokenizer", "prior", tuple(f"{b}/tokenizer".lstrip("/") for b in _SD_BASES),
              ("merges.txt", "special_tokens_map.json", "tokenizer_config.json", "vocab.json"),
              True, "sd", "tokenizer/", "stable-diffusion-v1-5/tokenizer"),
    Component("sd_text_encoder", "prior",
              tuple(f"{b}/text_encoder".lstrip("/") for b in _SD_BASES),
              ("config.json", "model.safetensors"),
              True, "sd", "text_encoder/", "stable-diffusion-v1-5/text_encoder"),
    Component("sd_scheduler", "prior", tuple(f"{b}/scheduler".lstrip("/") for b in _SD_BASES),
              ("scheduler_config.json",),
              True, "sd", "scheduler/", "stable-diffusion-v1-5/scheduler"),
    Component("arcface_onnx", "identity", ("",) + _ANTELOPE_BASES, ("arcface.onnx",),
              False, "arc2face", "", "",
              nested_bases=("antelopev2/antelopev2",)),
    Component("scrfd_onnx", "detector", _ANTELOPE_BASES, ("scrfd_10g_bnkps.onnx",),
              False, "detector", "models/antelopev2/", "models/antelopev2",
              nested_bases=("antelopev2/antelopev2",)),
)


@dataclass(frozen=True)
class FileStatus:
    """State of one weight file, as ``check_weights`` and ``arc2avatar doctor`` report it.

    Attributes:
        name: the file's path in the canonical layout, e.g. ``"arc2face/config.json"``.
        path: where it was found (or, when missing, where a download would put it).
        state: ``"found"``; ``"nested"`` (found in the ``antelopev2/antelopev2/`` zip pitfall
            folder: it works, flattening is tidier); ``"truncated"`` (present but cut short or
            corrupt: re-download); ``"missing"``.
        size: bytes on disk (0 when missing).
        group: ``"prior"`` | ``"identity"`` | ``"detector"`` | ``"lora"``.
        detail: why a file is ``"truncated"``; empty otherwise.
        hub: ``"repo@revision:filename"`` it comes from (empty for the LoRA).
        key: the file's name in the canonical (download) layout; equals ``name`` unless the
            file was found in another accepted layout.
    """

    name: str
    path: Path
    state: FileState
    size: int
    group: str = ""
    detail: str = ""
    hub: str = ""
    key: str = ""

    @property
    def usable(self) -> bool:
        return self.state in ("found", "nested")


def _hub_repo(config: WeightsConfig, hub: str) -> tuple[str, str]:
    return {
        "arc2face": (config.arc2face_repo, config.arc2face_revision),
        "sd": (config.sd_repo, config.sd_revision),
        "detector": (config.detector_repo, config.detector_revision),
    }[hub]


def _hub_filename(config: WeightsConfig, comp: Component, name: str) -> str:
    if comp.hub == "detector":
        return config.detector_filename
    return comp.hub_prefix + name


def _canonical_name(comp: Component, name: str) -> str:
    return f"{comp.download_base}/{name}".lstrip("/")


def _file_status(root: Path, rel: str, key: str, comp: Component, base: str,
                 hub: str) -> FileStatus:
    """Status of ``root/rel``; ``key`` = canonical name of the file it stands for."""
    path = root / rel
    if not path.is_file():
        return FileStatus(key, path, "missing", 0, comp.group, "", hub, key)
    problem = check_file(path)
    size = path.stat().st_size
    if problem:
        return FileStatus(rel, path, "truncated", size, comp.group, problem, hub, key)
    state: FileState = "nested" if base in comp.nested_bases else "found"
    return FileStatus(rel, path, state, size, comp.group, "", hub, key)


def _component_statuses(config: WeightsConfig, comp: Component, root: Path) -> list[FileStatus]:
    """Statuses of ``comp``'s files in the best candidate base: the first complete one, else the
    one with the most files present, else the canonical (download) location."""
    best: list[FileStatus] | None = None
    for base in comp.bases:
        statuses = []
        for name in comp.files:
            repo, revision = _hub_repo(config, comp.hub)
            hub = f"{repo}@{revision[:12]}:{_hub_filename(config, comp, name)}"
            candidates = (name,) + comp.alternatives.get(name, ())
            options = [_file_status(root, f"{base}/{c}".lstrip("/"), _canonical_name(comp, name),
                                    comp, base, hub) for c in candidates]
            present = [s for s in options if s.state != "missing"]
            statuses.append(next((s for s in present if s.usable), present[0] if present
                                 else options[0]))
        if all(s.usable for s in statuses):
            return statuses
        n_present = sum(s.state != "missing" for s in statuses)
        if n_present and (best is None or n_present > sum(s.state != "missing" for s in best)):
            best = statuses
    if best is not None:
        return best
    # Nothing anywhere: report the canonical location a download would fill.
    canonical_base = comp.download_base if comp.download_base in comp.bases else comp.bases[0]
    return [
        FileStatus(_canonical_name(comp, name), root / canonical_base / name, "missing", 0,
                   comp.group, "", s.hub, _canonical_name(comp, name))
        for name, s in zip(comp.files, statuses)
    ]


def _lora_status(config: WeightsConfig) -> FileStatus | None:
    if config.lora is None:
        return None
    path = Path(config.lora).expanduser()
    if not path.is_file():
        return FileStatus(str(path), path, "missing", 0, "lora")
    problem = check_file(path)
    state: FileState = "truncated" if problem else "found"
    return FileStatus(str(path), path, state, path.stat().st_size, "lora", problem or "")


def _check_groups(config: WeightsConfig, need: Iterable[str]) -> dict[str, list[FileStatus]]:
    need = _validate_need(need)
    root = config.local_root()
    return {comp.attr: _component_statuses(config, comp, root)
            for comp in COMPONENTS if comp.group in need}


def _validate_need(need: Iterable[str]) -> frozenset[str]:
    need = frozenset(need)
    unknown = need - ALL_GROUPS
    if unknown:
        raise ValueError(f"unknown weight groups {sorted(unknown)}; known: {sorted(ALL_GROUPS)}")
    return need


def check_weights(config: WeightsConfig,
                  need: Iterable[str] = ALL_GROUPS) -> list[FileStatus]:
    """State of every weight file of the ``need`` groups (all by default), plus the LoRA if set.

    Never raises for missing/broken files: that is what the list reports (see ``FileStatus``).
    """
    statuses = [s for group in _check_groups(config, need).values() for s in group]
    lora = _lora_status(config)
    return statuses + ([lora] if lora else [])


def _fetch_hint(root: Path) -> str:
    return (f"Fetch them with `arc2avatar weights download --to {root}` "
            f"(needs internet access to huggingface.co), or copy them by hand into {root} in the "
            "official layout (arc2face/, encoder/, arcface.onnx, antelopev2/, and SD-1.5's vae/ "
            "tokenizer/ text_encoder/ scheduler/ in the root or under stable-diffusion-v1-5/); "
            f"point arc2avatar at another folder with --weights DIR or ${ENV_WEIGHTS_ROOT}. "
            f"{DEMO_HINT}")


# Said wherever weights are missing (create, doctor): what works with none at all (issue 26).
DEMO_HINT = "Without any weights, `arc2avatar demo -o demo/` runs the whole pipeline offline."


def _copy_hint(root: Path) -> str:
    """After a failed download: the routes that do not repeat it."""
    return (f"Copy the files by hand into {root} in the official layout (arc2face/, encoder/, arcface.onnx, "
            "antelopev2/, and SD-1.5's vae/ tokenizer/ text_encoder/ scheduler/ in the root or under "
            f"stable-diffusion-v1-5/), or point arc2avatar at another folder with --weights DIR or "
            f"${ENV_WEIGHTS_ROOT}; `arc2avatar demo` needs no weights.")


def missing_weights_message(statuses: list[FileStatus], root: Path) -> str:
    """One message listing every missing and every broken file, and how to get them."""
    missing = [s for s in statuses if s.state == "missing"]
    broken = [s for s in statuses if s.state == "truncated"]
    lines = []
    if missing:
        lines.append(f"{len(missing)} weight file(s) missing under {root}:")
        lines += [f"  - {s.name}" + (f"  (from {s.hub})" if s.hub else "") for s in missing]
    if broken:
        lines.append(f"{len(broken)} weight file(s) truncated or corrupt, re-download them:")
        lines += [f"  - {s.path}: {s.detail}" for s in broken]
    lines.append(_fetch_hint(root))
    return "\n".join(lines)


def _paths_from(groups: dict[str, list[FileStatus]], config: WeightsConfig) -> WeightsPaths:
    values: dict[str, Path] = {}
    by_field = {comp.attr: comp for comp in COMPONENTS}
    for name, statuses in groups.items():
        first = statuses[0].path
        values[name] = first.parent if by_field[name].is_folder else first
    lora = _lora_status(config)
    if lora is not None:
        values["lora"] = lora.path
    return WeightsPaths(**values)


def resolve_weights(config: WeightsConfig, need: Iterable[str] = ALL_GROUPS,
                    download: bool = False) -> WeightsPaths:
    """Locate every file of the ``need`` groups; return their folders/files for the loaders.

    Args:
        config: where to look (``config.local_root()``) and which Hub snapshots to fetch.
        need: any of ``{"prior", "identity", "detector"}``: ``prior`` = Arc2Face UNet + encoder +
            SD-1.5 VAE/tokenizer/text encoder/scheduler; ``identity`` = ``arcface.onnx``;
            ``detector`` = ``scrfd_10g_bnkps.onnx``. Fields of groups not needed stay ``None``.
        download: fetch what is missing or broken from the Hub first (``download_weights``).

    Returns:
        ``WeightsPaths`` with folders for the diffusers/transformers loaders (``from_pretrained``
        on the folder) and file paths for the ONNX models.

    Raises:
        MissingWeightsError: (exit code 2) if any needed file is missing or truncated; the
            message lists ALL of them and says how to fetch them. Nothing has been loaded.
    """
    need = _validate_need(need)
    groups = _check_groups(config, need)
    statuses = [s for g in groups.values() for s in g]
    lora = _lora_status(config)
    bad = [s for s in statuses + ([lora] if lora else []) if not s.usable]
    if bad and download and any(s.group != "lora" for s in bad):
        download_weights(config, config.local_root(), need)
        return resolve_weights(config, need, download=False)
    if bad:
        raise MissingWeightsError(missing_weights_message(bad, config.local_root()))
    for s in statuses:
        if s.state == "nested":
            log.info("using %s from the nested folder %s (the antelopev2 zip pitfall); it works, "
                     "but you may flatten it to %s", s.name, s.path.parent,
                     s.path.parent.parent)
    return _paths_from(groups, config)


def hub_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` is set to a true value (huggingface_hub's convention)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def download_weights(config: WeightsConfig, to: str | os.PathLike | None = None,
                     need: Iterable[str] = ALL_GROUPS, probe: HubProbeConfig = HubProbeConfig()) -> WeightsPaths:
    """Fetch every missing or broken file of the ``need`` groups from the Hub into ``to``.

    Files already present and whole are kept. Each file comes from ``hf_hub_download(repo_id,
    filename, revision=..., local_dir=...)`` at the pinned revisions of ``config``, into the
    layout ``resolve_weights`` reads (SD-1.5 under ``stable-diffusion-v1-5/``, the detector
    under ``models/antelopev2/`` whatever its path in the detector repo). ``huggingface_hub``
    writes each file to a temporary name in ``<to>/.download/`` and renames it when complete;
    we then move it into place, so an interrupted download leaves no half file where the
    resolver looks. A broken file is replaced in place. Before the first request one quick
    probe checks that the Hub can be reached (``arc2avatar.weights.network``).

    Args:
        config: Hub repos/revisions; ``to`` defaults to ``config.local_root()``.
        to: destination root folder.
        need: groups to fetch (all by default).
        probe: the reachability probe's settings.

    Returns:
        The resolved ``WeightsPaths`` of ``to``.

    Raises:
        MissingWeightsError: offline (``HF_HUB_OFFLINE``, the probe failed, or a connection
            error): once, with the copy-by-hand route; or the Hub could not deliver a file
            (unknown revision, gated repo...). The message names the file.
    """
    root = Path(to).expanduser() if to is not None else config.local_root()
    target = WeightsConfig(**{**config.__dict__, "root": root})
    need = _validate_need(need)
    todo = [s for s in check_weights(target, need) if not s.usable and s.group != "lora"]
    if not todo:
        log.info("all weight files already present under %s", root)
        return resolve_weights(target, need)
    by_name = {_canonical_name(c, n): (c, n) for c in COMPONENTS for n in c.files}
    plan = []
    for status in todo:
        comp, name = by_name[status.key]
        repo, revision = _hub_repo(target, comp.hub)
        in_place = status.state == "truncated" and status.path.name == name
        final = status.path if in_place else root / comp.download_base / name
        plan.append((status, repo, revision, _hub_filename(target, comp, name), final))

    def offline(reason: str) -> MissingWeightsError:
        endpoint = hub_endpoint()
        files = [MissingFile(s.key, final, file_url(endpoint, repo, rev, filename))
                 for s, repo, rev, filename, final in plan]
        return MissingWeightsError(offline_message(reason, files, root, ENV_WEIGHTS_ROOT))

    if hub_offline():
        raise offline("HF_HUB_OFFLINE is set (unset it on a machine with internet access)")
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as error:  # pragma: no cover - huggingface_hub is a core dependency
        raise MissingWeightsError(
            "downloading needs huggingface_hub: pip install huggingface_hub") from error
    unreachable = probe_hub(hub_endpoint(), probe)
    if unreachable is not None:
        raise offline(f"cannot reach the Hugging Face Hub at {hub_endpoint()} ({unreachable})")
    staging = root / STAGING_DIR
    for status, repo, revision, filename, final in plan:
        log.info("downloading %s@%s:%s -> %s (%s)", repo, revision[:12], filename, final,
                 "replacing a broken copy" if status.state == "truncated" else "missing")
        try:
            fetched = hf_hub_download(repo, filename, revision=revision, local_dir=staging)
        except Exception as error:  # network / Hub errors of many kinds
            if is_network_error(error):
                raise offline(f"the connection to {hub_endpoint()} failed ({_root_cause(error)})") from error
            raise MissingWeightsError(
                f"could not download {filename} from {repo}@{revision}: "
                f"{_root_cause(error)}\n{_copy_hint(root)}") from error
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(fetched, final)
    return resolve_weights(target, need)


def _root_cause(error: BaseException) -> str:
    """``"ClassName: first line"`` of the innermost cause (Hub errors wrap the useful one)."""
    while (error.__cause__ or error.__context__) is not None:
        error = error.__cause__ or error.__context__
    text = str(error).strip().splitlines()
    return f"{error.__class__.__name__}: {text[0] if text else ''}"
