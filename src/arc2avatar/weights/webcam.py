"""The in-browser face tracker's files: ``@vladmandic/face-api`` and TensorFlow.js's WebAssembly
kernels from the npm registry (docs/live.md).

The live page (``arc2avatar viewer OUT --webcam``, the app's Live tab) tracks the face in the
browser with face-api: its script (TensorFlow.js 4.22.0 bundled in, with its WASM backend's
JavaScript), the tiny face detector and the 68-point landmark net (iBUG 300-W layout, as dlib's
predictor that ``drive`` uses). The WASM backend's compiled kernels (``.wasm``: plain, SIMD, SIMD
+ threads) are not in face-api's package; they come from ``@tensorflow/tfjs-backend-wasm`` at the
version face-api bundles. Each file comes from one pinned package version's registry tarball and
is checked against the sha256 pinned here, both when it is stored and, again, by the page before
it runs it.

* ``fetch_webcam_assets`` downloads both tarballs (``arc2avatar weights download --webcam``);
* ``webcam_assets_from_tarball`` takes a tarball the user has (``--webcam-assets PATH ...``, e.g.
  from ``npm pack @vladmandic/face-api@VERSION``), recognised by its members;
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

REGISTRY_URL = "https://registry.npmjs.org"
WEBCAM_SUBDIR = "webcam"


@dataclass(frozen=True)
class WebcamPackage:
    """One pinned npm package: ``name@version``, the sha256 of its registry tarball (the npm
    integrity field is sha512 of the same bytes), its licence."""

    name: str
    version: str
    tarball_sha256: str
    license: str

    @property
    def spec(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def tarball_name(self) -> str:
        """The registry's file name (``face-api-1.7.15.tgz``)."""
        return f"{self.name.rsplit('/', 1)[-1]}-{self.version}.tgz"

    @property
    def pack_name(self) -> str:
        """``npm pack``'s file name (``vladmandic-face-api-1.7.15.tgz``)."""
        return f"{self.name.lstrip('@').replace('/', '-')}-{self.version}.tgz"

    def tarball_url(self, registry: str = REGISTRY_URL) -> str:
        return f"{registry.rstrip('/')}/{self.name}/-/{self.tarball_name}"


FACE_API = WebcamPackage("@vladmandic/face-api", "1.7.15",
                         "0d77fffeef362ef9c0939cf6c567f3a2e8e177f114fa257a3270cbd2e509b031", "MIT")
# the WASM kernels of the TensorFlow.js that face-api 1.7.15 bundles (its dist/tfjs.version.js: 4.22.0)
TFJS_WASM = WebcamPackage("@tensorflow/tfjs-backend-wasm", "4.22.0",
                          "5cd6f5e18657c12fb94f4ec3dcef485c8c1a9ca39f3ef1d261c1cb13c1a231c3", "Apache-2.0")
WEBCAM_PACKAGES: tuple[WebcamPackage, ...] = (FACE_API, TFJS_WASM)
FACE_API_PACKAGE = FACE_API.name
FACE_API_VERSION = FACE_API.version
FACE_API_LICENSE = FACE_API.license
TARBALL_NAME = FACE_API.tarball_name
TARBALL_SHA256 = FACE_API.tarball_sha256


@dataclass(frozen=True)
class WebcamAsset:
    """One file the page loads: its ``name`` beside the page (in ``face-api/``), its ``member``
    in its package's npm tarball, its pinned ``sha256``, the ``package`` it comes from."""

    name: str
    member: str
    sha256: str
    package: WebcamPackage = FACE_API


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
    WebcamAsset("tfjs-backend-wasm.wasm", "package/dist/tfjs-backend-wasm.wasm",
                "70a5d516060464e5269f01c74bac1772d6b8ab6cb612acf16b5cdaf61f78d892", TFJS_WASM),
    WebcamAsset("tfjs-backend-wasm-simd.wasm", "package/dist/tfjs-backend-wasm-simd.wasm",
                "77ebb28a6d34f371dbbf2086b7f2de8994acd8ea5a3cf1fa24d2c26c840cac7b", TFJS_WASM),
    WebcamAsset("tfjs-backend-wasm-threaded-simd.wasm", "package/dist/tfjs-backend-wasm-threaded-simd.wasm",
                "c052228d4bef185c27bbe59a9e029570c78bbb9f08b3cb46b597851650373de2", TFJS_WASM),
)
MAX_TARBALL_BYTES = 64 << 20  # face-api 1.7.15's tarball is 12.7 MB, tfjs-backend-wasm 4.22.0's 2.5 MB
HOW_TO_GET = (f"run `arc2avatar weights download --webcam` (fetches {FACE_API.spec} and {TFJS_WASM.spec} from "
              f"the npm registry) or `arc2avatar weights download --webcam-assets A.tgz B.tgz` with the tarballs from "
              f"`npm pack {FACE_API.spec} {TFJS_WASM.spec}`")


def tarball_url(registry: str = REGISTRY_URL, package: WebcamPackage = FACE_API) -> str:
    """The registry's tarball of a pinned package."""
    return package.tarball_url(registry)


def webcam_dir(root: str | os.PathLike) -> Path:
    """Where the assets are stored under a weights root."""
    return Path(root) / WEBCAM_SUBDIR / f"face-api-{FACE_API_VERSION}"


def _check(asset: WebcamAsset, data: bytes, where: str) -> None:
    digest = hashlib.sha256(data).hexdigest()
    if digest != asset.sha256:
        raise InputError(f"{where}: {asset.member} has sha256 {digest[:16]}…, not the pinned {asset.sha256[:16]}… "
                         f"of {asset.package.spec} (a different version or a modified file)")


def webcam_assets_from_tarball(tarball: str | os.PathLike, root: str | os.PathLike) -> Path:
    """Check and store the assets of an npm tarball of one of the pinned packages (recognised by
    its members); returns their folder.

    Every member is checked against its pinned sha256 before anything is written (``InputError``
    naming the member otherwise); each file is written atomically.
    """
    path = Path(tarball)
    if not path.is_file():
        raise InputError(f"{path} does not exist; {HOW_TO_GET}")
    if path.stat().st_size > MAX_TARBALL_BYTES:
        raise InputError(f"{path} is {path.stat().st_size >> 20} MB, larger than any tarball of "
                         f"{FACE_API.spec} or {TFJS_WASM.spec}")
    return _store_from_bytes(path.read_bytes(), root, str(path))


def _store_from_bytes(data: bytes, root: str | os.PathLike, where: str,
                      package: WebcamPackage | None = None) -> Path:
    """Store the pinned files of ``package`` (default: the package whose files the tarball holds)."""
    contents: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
            names = set(archive.getnames())
            if package is None:
                package = next((p for p in WEBCAM_PACKAGES
                                if any(a.member in names for a in WEBCAM_ASSETS if a.package == p)), FACE_API)
            for asset in (a for a in WEBCAM_ASSETS if a.package == package):
                if asset.member not in names:
                    raise InputError(f"{where} holds no {asset.member}: not a tarball of {package.spec}")
                member = archive.getmember(asset.member)
                handle = archive.extractfile(member) if member.isfile() else None
                if handle is None:
                    raise InputError(f"{where}: {asset.member} is not a regular file")
                contents[asset.name] = handle.read()
    except (tarfile.TarError, OSError, EOFError) as error:
        raise InputError(f"{where} is not a readable .tgz tarball ({error})") from None
    stored = [a for a in WEBCAM_ASSETS if a.name in contents]
    for asset in stored:
        _check(asset, contents[asset.name], where)
    folder = webcam_dir(root)
    for asset in stored:
        atomic_write_bytes(folder / asset.name, contents[asset.name])
    return folder


def fetch_webcam_assets(root: str | os.PathLike, registry: str = REGISTRY_URL, timeout_s: float = 60.0) -> Path:
    """Download the pinned tarballs from the npm registry, check them, store the assets.

    Both tarballs are fetched and checked before anything is stored. Offline or refused:
    ``MissingWeightsError`` with one line saying how else to get them.
    """
    import urllib.error
    import urllib.request

    fetched: list[tuple[WebcamPackage, bytes, str]] = []
    for package in WEBCAM_PACKAGES:
        url = package.tarball_url(registry)
        try:
            with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 (a fixed https URL)
                data = response.read(MAX_TARBALL_BYTES + 1)
        except (urllib.error.URLError, OSError, ValueError) as error:
            reason = getattr(error, "reason", error)
            raise MissingWeightsError(f"could not fetch {url} ({reason}); offline? copy the tarballs from "
                                      f"`npm pack {FACE_API.spec} {TFJS_WASM.spec}` made elsewhere and run "
                                      f"`arc2avatar weights download --webcam-assets A.tgz B.tgz`") from None
        digest = hashlib.sha256(data).hexdigest()
        if digest != package.tarball_sha256:
            raise InputError(f"{url} has sha256 {digest[:16]}…, not the pinned {package.tarball_sha256[:16]}…; "
                             f"nothing stored")
        fetched.append((package, data, url))
    folder = webcam_dir(root)
    for package, data, url in fetched:
        folder = _store_from_bytes(data, root, url, package)
    return folder


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
    "FACE_API",
    "FACE_API_LICENSE",
    "FACE_API_PACKAGE",
    "FACE_API_VERSION",
    "HOW_TO_GET",
    "TARBALL_SHA256",
    "TFJS_WASM",
    "WEBCAM_ASSETS",
    "WEBCAM_PACKAGES",
    "WebcamAsset",
    "WebcamPackage",
    "fetch_webcam_assets",
    "tarball_url",
    "webcam_assets",
    "webcam_assets_from_tarball",
    "webcam_dir",
]
