"""The in-browser face tracker's npm tarballs for the browser tests (the live page, the face-api
tracker of tests/test_expression_tracker.py): ``@vladmandic/face-api`` and
``@tensorflow/tfjs-backend-wasm`` at their pinned versions, from ``npm pack`` (cached in
tests/.npm-cache) or ``ARC2AVATAR_FACE_API_TGZ`` / ``ARC2AVATAR_TFJS_WASM_TGZ``. Without npm the
test skips, under ``CI=true`` it fails."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from arc2avatar.weights.webcam import FACE_API, TFJS_WASM, WebcamPackage, webcam_assets_from_tarball

NPM_CACHE = Path(__file__).parent / ".npm-cache"  # ignored by git; reused between runs
TARBALL_ENV = {FACE_API: "ARC2AVATAR_FACE_API_TGZ", TFJS_WASM: "ARC2AVATAR_TFJS_WASM_TGZ"}


def packed(package: WebcamPackage, purpose: str = "the live page's tests") -> Path:
    """The registry's tarball of a pinned package (``npm pack``, cached in tests/.npm-cache)."""
    given = os.environ.get(TARBALL_ENV[package])
    if given:
        return Path(given)
    tarball = NPM_CACHE / package.pack_name
    if tarball.is_file():
        return tarball
    npm = shutil.which("npm")
    why = "npm (Node.js) is not installed" if npm is None else None
    if npm is not None:
        NPM_CACHE.mkdir(exist_ok=True)
        # packed into a folder of its own and moved in whole: two test files (two xdist workers) may
        # pack it at once, and neither may read the other's half-written file
        private = Path(tempfile.mkdtemp(dir=NPM_CACHE, prefix="pack-"))
        try:
            result = subprocess.run([npm, "pack", package.spec, "--pack-destination", str(private)], check=False,
                                    capture_output=True, text=True, timeout=300)
            if result.returncode == 0 and (private / package.pack_name).is_file():
                os.replace(private / package.pack_name, tarball)
                return tarball
        finally:
            shutil.rmtree(private, ignore_errors=True)
        why = f"npm pack failed: {result.stderr.strip()[-300:]}"
    message = f"{purpose} need {package.spec} from npm: {why}"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def store_face_api(root: Path, purpose: str) -> Path:
    """Both pinned tarballs' files stored under the weights root ``root`` (as ``arc2avatar weights
    download --webcam`` stores them); returns ``root``."""
    for package in (FACE_API, TFJS_WASM):
        webcam_assets_from_tarball(packed(package, purpose), root)
    return root
