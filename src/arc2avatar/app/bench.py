"""A bounded load generator for the app's status endpoint (tests/test_serve.py, benchmarks/bench_serve.py).

``poll_status`` runs N clients for a fixed time on threads; each calls ``job_status`` once per
``interval_s`` (the page's own refresh rate) and records the wall-clock latency of each call. The
clients' first calls are spread evenly over one interval (independent pollers are not in lock-step;
started together, all N would call in the same millisecond every second).
``via="http"``: Gradio's REST route for the endpoint (``POST /gradio_api/run/job_status``, one
request, what scripts and curl use; each client sends a ``session_hash``, as Gradio's own clients do:
without one Gradio builds a fresh session state, ~10 ms of CPU on this page, for every call); ``via="gradio_client"``: the Python client (how Spaces are
scripted; it goes through Gradio's queue and an event stream, so each call costs more).
"""

from __future__ import annotations

import secrets
import threading
import time
from typing import Any, Literal


def _percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, int(round(fraction * (len(sorted_values) - 1)))))
    return sorted_values[index]


def poll_status(url: str, job_id: str, *, clients: int = 20, seconds: float = 30.0, interval_s: float = 1.0,
                via: Literal["http", "gradio_client"] = "http", auth: tuple[str, str] | None = None) -> dict[str, Any]:
    """Poll ``job_status(job_id)`` from ``clients`` threads for ``seconds``; latency figures in seconds.

    Returns: {"clients", "seconds", "interval_s", "via", "calls", "errors", "first_error",
    "p50_s", "p95_s", "max_s", "states"} (states: how many answers saw each job state).
    """
    import httpx

    url = url.rstrip("/")
    latencies: list[float] = []
    errors: list[str] = []
    states: dict[str, int] = {}
    lock = threading.Lock()
    ready = threading.Barrier(clients + 1)
    stop_at: list[float] = [0.0]

    def make_call():
        if via == "gradio_client":
            from gradio_client import Client

            client = Client(url + "/", verbose=False, auth=auth)
            return lambda: client.predict(job_id, api_name="/job_status")[0]
        http = httpx.Client(timeout=30.0)
        session = secrets.token_hex(8)  # Gradio keeps one session state per hash; without one it builds a new one per call
        if auth:
            http.post(f"{url}/login", data={"username": auth[0], "password": auth[1]}).raise_for_status()

        def call():
            answer = http.post(f"{url}/gradio_api/run/job_status", json={"data": [job_id], "session_hash": session})
            answer.raise_for_status()
            return answer.json()["data"][0]
        return call

    def worker(phase_s: float) -> None:
        try:
            call = make_call()
        except Exception as error:  # noqa: BLE001 - counted, reported
            with lock:
                errors.append(f"connect: {error!r}")
            ready.wait()
            return
        ready.wait()
        time.sleep(phase_s)  # clients spread over the interval, as independent pollers are (not in lock-step)
        while time.perf_counter() < stop_at[0]:
            started = time.perf_counter()
            try:
                state = call()["state"]
                elapsed = time.perf_counter() - started
                with lock:
                    latencies.append(elapsed)
                    states[state] = states.get(state, 0) + 1
            except Exception as error:  # noqa: BLE001 - counted, reported
                with lock:
                    errors.append(repr(error))
            time.sleep(max(0.0, interval_s - (time.perf_counter() - started)))

    threads = [threading.Thread(target=worker, args=(k * interval_s / clients,), daemon=True) for k in range(clients)]
    for thread in threads:
        thread.start()
    stop_at[0] = time.perf_counter() + 3600.0
    ready.wait()
    stop_at[0] = time.perf_counter() + seconds
    for thread in threads:
        thread.join(timeout=seconds + 60.0)
    ordered = sorted(latencies)
    return {"clients": clients, "seconds": seconds, "interval_s": interval_s, "via": via, "calls": len(ordered),
            "errors": len(errors), "first_error": errors[0] if errors else None,
            "p50_s": round(_percentile(ordered, 0.50), 4), "p95_s": round(_percentile(ordered, 0.95), 4),
            "max_s": round(ordered[-1], 4) if ordered else float("nan"), "states": states}
