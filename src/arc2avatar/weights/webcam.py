"""The in-browser face tracker's files: ``@vladmandic/face-api`` from the npm registry (docs/live.md).

The live page (``arc2avatar viewer OUT --webcam``, the app's Live tab) tracks the face in the
browser with face-api: its script (TensorFlow.js bundled in), the tiny face detector and the
68-point landmark net (iBUG 300-W layout, as dlib's predictor that ``drive`` uses). They come
from one pinned package version's registry tarball, and every file is checked against the
sha256 pinned here, both when it is stored and, again, by the page before it runs it.

* ``fetch_webcam_assets`` downloads the tarball (``arc2avatar weights download --webcam``);
* ``webcam_assets_from_tarball`` takes a tarball the user has (``--webcam-assets PATH``, e.g.
  from ``npm pack @vladmandic/face-api@VERSION``);
* ``webcam_assets`` finds the stored files or says, in one line, how to get them.

Stored under ``<weights root>/webcam/face-api-VERSION/``. Written by hand: the pinned table and a
tar member extraction (the standard library's ``tarfile`` and ``urllib``); no package does this.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

from arc2avatar._io import atomic_write_bytes, file_sha256
from arc2avatar.errors import InputError, MissingWeightsError

FACE_API_PACKAGE = "@vladmandic/face-api"
FACE_API_VERSION = "1.7.15"
FACE_API_LICENSE = "MIT"
REGISTRY_URL = "https://registry.npmjs.org"
TARBALL_NAME = f"face-api-{FACE_API_VERSION}.tgz"
# sha256 of the registry's tarball (the npm integrity field is sha512 of the same bytes)
TARBALL_SHA256 = "0d77fffeef362ef9c0939cf6c567f3a2e8e177f114fa257a3270cbd2e509b031"
WEBCAM_SUBDIR = "webcam"


@dataclass(frozen=True)
class WebcamAsset:
    """One file the page loads: its ``name`` beside the page (in ``face-api/``), its ``member``
    in the npm tarball, its pinned ``sha256``."""

    name: str
    member: str
    sha256: str


WEBCAM_ASSETS: tuple[WebcamAsset, ...] = (
    WebcamAsset("face-api.js", "package/dist/face-api.js",
                "0160f7af3a8c78cece45c7ecc765383bad74becfd438bb787cdd627b2d6f2cf6"),
    WebcamAsset("tiny_face_detector_model-weights_manifest.json",
                "package/model/tiny_face_detector_model-weights_manifest.json",
                "5d1af4849ac48d5b985f4a9b16010c512353ddd6fcc63d50fd0bc9e9e64296e5"),
    WebcamAsset("tiny_face_detector_model.bin", "package/model/tiny_face_detector_model.bin",
                "b7503ce7df31039b1c43316a9b865cab6a70dd748cc602d3fa28b551503c3871"),
    WebcamAsset("face_landmark_68_model-weights_manifest.json",
                "package/model/face_landmark_68_model-weights_manifest.json",
                "ca4886639f86e99b39fed0c155f81b63317225773bd9616716e887b0153389c9"),
    WebcamAsset("face_landmark_68_model.bin", "package/model/face_landmark_68_model.bin",
                "4611ef65c87d836d03d684b30eec4d195d8b219fa1dd58fc58945831c6b9299b"),
    WebcamAsset("LICENSE", "package/LICENSE", "9a3442b79acaf4fbc7c2e07b7e2d8f84af9bb3871bf08a69d80304ab00640e9a"),
)
MAX_TARBALL_BYTES = 64 << 20  # the 1.7.15 tarball is 12.7 MB
HOW_TO_GET = (f"run `arc2avatar weights download --webcam` (fetches {FACE_API_PACKAGE}@{FACE_API_VERSION} from "
              f"the npm registry) or `arc2avatar weights download --webcam-assets face-api.tgz` with a tarball from "
              f"`npm pack {FACE_API_PACKAGE}@{FACE_API_VERSION}`")


def tarball_url(registry: str = REGISTRY_URL) -> str:
    """The registry's tarball of the pinned version."""
    return f"{registry.rstrip('/')}/{FACE_API_PACKAGE}/-/{TARBALL_NAME}"


def webcam_dir(root: str | os.PathLike) -> Path:
    """Where the assets are stored under a weights root."""
    return Path(root) / WEBCAM_SUBDIR / f"face-api-{FACE_API_VERSION}"


def _check(asset: WebcamAsset, data: bytes, where: str) -> None:
    digest = hashlib.sha256(data).hexdigest()
    if digest != asset.sha256:
        raise InputError(f"{where}: {asset.member} has sha256 {digest[:16]}…, not the pinned {asset.sha256[:16]}… "
                         f"of {FACE_API_PACKAGE}@{FACE_API_VERSION} (a different version or a modified file)")


def webcam_assets_from_tarball(tarball: str | os.PathLike, root: str | os.PathLike) -> Path:
    """Check and store the assets of an npm tarball of the pinned version; returns their folder.

    Every member is checked against its pinned sha256 before anything is written (``InputError``
    naming the member otherwise); each file is written atomically.
    """
    path = Path(tarball)
    if not path.is_file():
        raise InputError(f"{path} does not exist; {HOW_TO_GET}")
    if path.stat().st_size > MAX_TARBALL_BYTES:
        raise InputError(f"{path} is {path.stat().st_size >> 20} MB, larger than any {FACE_API_PACKAGE} tarball")
    return _store_from_bytes(path.read_bytes(), root, str(path))


def _store_from_bytes(data: bytes, root: str | os.PathLike, where: str) -> Path:
    contents: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
            for asset in WEBCAM_ASSETS:
                try:
                    member = archive.getmember(asset.member)
                except KeyError:
                    raise InputError(f"{where} holds no {asset.member}: not a tarball of "
                                     f"{FACE_API_PACKAGE}@{FACE_API_VERSION}") from None
                handle = archive.extractfile(member) if member.isfile() else None
                if handle is None:
                    raise InputError(f"{where}: {asset.member} is not a regular file")
                contents[asset.name] = handle.read()
    except (tarfile.TarError, OSError, EOFError) as error:
        raise InputError(f"{where} is not a readable .tgz tarball ({error})") from None
    for asset in WEBCAM_ASSETS:
        _check(asset, contents[asset.name], where)
    folder = webcam_dir(root)
    for asset in WEBCAM_ASSETS:
        atomic_write_bytes(folder / asset.name, contents[asset.name])
    return folder


def fetch_webcam_assets(root: str | os.PathLike, registry: str = REGISTRY_URL, timeout_s: float = 60.0) -> Path:
    """Download the pinned tarball from the npm registry, check it, store the assets.

    Offline or refused: ``MissingWeightsError`` with one line saying how else to get them.
    """
    import urllib.error
    import urllib.request

    url = tarball_url(registry)
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 (a fixed https URL)
            data = response.read(MAX_TARBALL_BYTES + 1)
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        raise MissingWeightsError(f"could not fetch {url} ({reason}); offline? copy a tarball from "
                                  f"`npm pack {FACE_API_PACKAGE}@{FACE_API_VERSION}` made elsewhere and run "
                                  f"`arc2avatar weights download --webcam-assets face-api.tgz`") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != TARBALL_SHA256:
        raise InputError(f"{url} has sha256 {digest[:16]}…, not the pinned {TARBALL_SHA256[:16]}…; nothing stored")
    return _store_from_bytes(data, root, url)


def webcam_assets(root: str | os.PathLike) -> Path:
    """The folder of the stored, whole assets; ``MissingWeightsError`` (one line) otherwise."""
    folder = webcam_dir(root)
    for asset in WEBCAM_ASSETS:
        path = folder / asset.name
        if not path.is_file():
            raise MissingWeightsError(f"the in-browser face tracker's files are not installed ({path} is missing); "
                                      f"{HOW_TO_GET}")
        if file_sha256(path) != asset.sha256:
            raise MissingWeightsError(f"{path} does not match its pinned sha256 (modified or truncated); {HOW_TO_GET}")
    return folder


__all__ = [
    "FACE_API_LICENSE",
    "FACE_API_PACKAGE",
    "FACE_API_VERSION",
    "HOW_TO_GET",
    "TARBALL_SHA256",
    "WEBCAM_ASSETS",
    "WebcamAsset",
    "fetch_webcam_assets",
    "tarball_url",
    "webcam_assets",
    "webcam_assets_from_tarball",
    "webcam_dir",
]
