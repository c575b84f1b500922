"""Is the Hugging Face Hub reachable? One quick probe before downloading, and what to say when not.

Without it, ``arc2avatar weights download`` on a machine without network let ``huggingface_hub``
retry every request five times (≈ 27 s for the first file, each retry logged twice) and then
advised running the very command that had just failed (issue 20). Now: one TCP connection to
the Hub's endpoint (``HF_ENDPOINT``, default https://huggingface.co) decides, in at most
``HubProbeConfig.timeout_s``; a connection error during a download is treated the same way; the
message says once that there is no network, lists each missing file with the URL it comes from
and the path it belongs at (the copy-by-hand route), and points to ``arc2avatar demo``, which
needs no weights. Behind an HTTP(S) proxy the probe is skipped (only the proxy can tell).

Written by hand: a socket connect; huggingface_hub has no "is the Hub reachable" call.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence
from urllib.parse import urlsplit

PROXY_VARIABLES: tuple[str, ...] = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")
# Exception classes (by name, anywhere in the cause chain's MRO) that mean "no connection":
# the standard library's and httpx's (huggingface_hub's HTTP client).
NETWORK_ERROR_NAMES: frozenset[str] = frozenset({
    "ConnectionError", "TimeoutError", "gaierror", "timeout", "ConnectError", "ConnectTimeout",
    "NetworkError", "TimeoutException", "ProxyError",
})


@dataclass(frozen=True)
class HubProbeConfig:
    """The reachability probe.

    Attributes:
        timeout_s: seconds to wait for the TCP connection to the Hub (DNS lookup excluded).
        enabled: False skips the probe (downloads then find out on their first request).
    """

    timeout_s: float = 3.0
    enabled: bool = True


def hub_endpoint() -> str:
    """The Hub URL huggingface_hub talks to (``HF_ENDPOINT`` when set)."""
    from huggingface_hub import constants

    return str(constants.ENDPOINT).rstrip("/")


def behind_proxy(environ: Mapping[str, str] = os.environ) -> bool:
    return any(environ.get(name) for name in PROXY_VARIABLES)


def probe_hub(endpoint: str, config: HubProbeConfig = HubProbeConfig()) -> str | None:
    """``None`` when a TCP connection to ``endpoint`` opens, else why not (one line)."""
    if not config.enabled or behind_proxy():
        return None
    parts = urlsplit(endpoint)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=config.timeout_s):
            return None
    except OSError as error:  # refused, unreachable, DNS failure, timeout
        return f"{type(error).__name__}: {error}".rstrip(": ")


def is_network_error(error: BaseException) -> bool:
    """True when ``error`` or anything in its cause chain is a connection failure (not an HTTP
    status such as 404, not a disk error)."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if any(cls.__name__ in NETWORK_ERROR_NAMES for cls in type(current).__mro__):
            return True
        current = current.__cause__ or current.__context__
    return False


@dataclass(frozen=True)
class MissingFile:
    """One file to fetch: its canonical name, the path it belongs at, the URL it comes from."""

    name: str
    path: Path
    url: str


def file_url(endpoint: str, repo: str, revision: str, filename: str) -> str:
    """The Hub's download URL of one file at a pinned revision."""
    return f"{endpoint}/{repo}/resolve/{revision}/{filename}"


def offline_message(reason: str, files: Sequence[MissingFile], root: Path, weights_env: str) -> str:
    """What to do without network: copy each file by hand, or run the offline demo."""
    lines = [f"no network: {reason}. Nothing was downloaded.",
             f"{len(files)} weight file(s) are missing. On a machine with internet access, download each URL "
             f"and copy the file to the path after the arrow (the layout arc2avatar reads, README \"Weights\"):"]
    lines += [f"  {f.url}\n    → {f.path}" for f in files]
    lines.append(f"Or keep the files in another folder and pass --weights DIR (or set ${weights_env}). "
                 "Without any weights, `arc2avatar demo -o demo/` runs the whole pipeline offline.")
    return "\n".join(lines)


__all__ = [
    "HubProbeConfig", "MissingFile", "behind_proxy", "file_url", "hub_endpoint", "is_network_error",
    "offline_message", "probe_hub",
]
