"""Load on ``arc2avatar serve``'s status endpoint while a job runs (issue 17).

    python benchmarks/bench_serve.py --out RESULT.json [--clients 20] [--seconds 30] [--via http gradio_client]

Starts ``arc2avatar serve`` on 127.0.0.1 (a free port, a temporary work folder, the offline oracle
demo on the cpu-smoke preset with a schedule long enough to outlast the measurement), submits the
astronaut photo through the named API, waits until the job is optimising, then runs N clients that
each call ``job_status`` once a second for the given time (``arc2avatar.app.bench.poll_status``),
once per transport: ``http`` (Gradio's REST route ``/gradio_api/run/job_status``) and
``gradio_client`` (the Python client, through Gradio's queue). Prints and writes p50/p95/max
latency, calls and errors, the machine's load average and the job's progress during the run.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SETTINGS = ("resolution=64", "meanface.resolution=64", "meanface.iterations=20", "meanface.head_iterations=20",
            "template.face_levels=0", "iterations=5000", "log_every=5")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="JSON result path")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between one client's calls")
    parser.add_argument("--via", nargs="+", default=["http", "gradio_client"], choices=("http", "gradio_client"))
    args = parser.parse_args()

    from PIL import Image
    from skimage.data import astronaut

    from arc2avatar.app.bench import poll_status

    work = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    photo = work / "astronaut.png"
    Image.fromarray(astronaut()).resize((256, 256)).save(photo)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(work / "serve.log", "w")
    env = {**os.environ, "ARC2AVATAR_CACHE": str(work / "cache")}
    command = [sys.executable, "-m", "arc2avatar.cli.main", "serve", "--work", str(work / "work"), "--port", str(port),
               *sum((["--set", s] for s in SETTINGS), [])]
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        while "arc2avatar: serving on" not in (work / "serve.log").read_text():
            if server.poll() is not None:
                raise SystemExit(f"serve exited:\n{(work / 'serve.log').read_text()[-2000:]}")
            time.sleep(0.5)
        from gradio_client import Client, handle_file

        client = Client(url + "/", verbose=False)
        job_id = client.predict([handle_file(str(photo))], "cpu-smoke", 0, api_name="/create_avatar")
        while not client.predict(job_id, api_name="/job_status")[0].get("iteration"):
            time.sleep(1.0)
        results = {"clients": args.clients, "seconds": args.seconds, "interval_s": args.interval,
                   "cpu_count": os.cpu_count(), "runs": []}
        for via in args.via:
            before = client.predict(job_id, api_name="/job_status")[0]
            load_before = os.getloadavg()
            report = poll_status(url, job_id, clients=args.clients, seconds=args.seconds, interval_s=args.interval, via=via)
            after = client.predict(job_id, api_name="/job_status")[0]
            report.update(loadavg_before=[round(x, 2) for x in load_before], loadavg_after=[round(x, 2) for x in os.getloadavg()],
                          job_iterations=[before.get("iteration"), after.get("iteration")], job_state=after["state"])
            results["runs"].append(report)
            print(json.dumps(report), flush=True)
        client.predict(job_id, api_name="/cancel_job")
        Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.out}")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=120)


if __name__ == "__main__":
    main()
