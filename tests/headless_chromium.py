"""Headless Chromium + ChromeDriver for the browser tests (the viewer page, our exports in a
third-party viewer, the web app): one way to find, start and stop it. A missing browser skips the
test with the install line, or fails it under CI, where .ci/run installs one."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from typing import Any, Iterator

import pytest

CHROMIUM_CANDIDATES = ("/usr/lib/chromium/chromium", "chromium", "chromium-browser", "google-chrome")
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
    "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update",
    "--disable-sync",
)
DEFAULT_WINDOW = (720, 540)  # pixels
INSTALL_HINT = ("apt-get update && apt-get install -y chromium chromium-driver; pip install -e '.[test]' "
                "(selenium); or set ARC2AVATAR_CHROMIUM / ARC2AVATAR_CHROMEDRIVER")


def find_browser() -> tuple[str, str] | str:
    """(chromium, chromedriver) paths, or why there are none."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "the Python package selenium is not installed"
    candidates = [os.environ.get("ARC2AVATAR_CHROMIUM", ""), *CHROMIUM_CANDIDATES]
    chromium = next((shutil.which(c) for c in candidates if c and shutil.which(c)), None)
    driver = os.environ.get("ARC2AVATAR_CHROMEDRIVER") or shutil.which("chromedriver")
    if chromium is None or driver is None:
        return f"no {'chromium' if chromium is None else 'chromedriver'} found"
    return chromium, driver


@contextlib.contextmanager
def headless_chromium(purpose: str, window: tuple[int, int] = DEFAULT_WINDOW, console: bool = False,
                      script_timeout_s: float | None = None, flags: tuple[str, ...] = ()) -> Iterator[Any]:
    """A selenium Chrome driver on a throw-away profile, quit and removed on exit.

    ``purpose`` names the test in the skip/fail message; ``console`` keeps the page's console
    log (for failure messages); ``flags`` are added to Chromium's (a fake camera, say).
    """
    found = find_browser()
    if isinstance(found, str):
        message = f"{purpose} needs headless Chromium: {found}; install with: {INSTALL_HINT}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = found[0]
    if console:
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    profile = tempfile.mkdtemp(prefix="arc2avatar-chromium-")
    for flag in (*CHROMIUM_FLAGS, *flags, f"--window-size={window[0]},{window[1]}", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(found[1]), options=options)
    if script_timeout_s is not None:
        driver.set_script_timeout(script_timeout_s)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
