"""The Ray backend's costs (issue 29): scheduling overhead per job against the local pool, bytes moved
per job, and the time from a node lost to its job running again.

    python benchmarks/bench_cluster.py --out RESULT.json [--jobs 4] [--iterations 20]

All on this machine, the CPU path, the oracle prior and one tiny schedule (32² renders, a 5 + 5
iteration mean face, ``--iterations``, a checkpoint every 5 iterations):

* ``local``: ``create_batch`` with one local worker process (``--workers 1 --threads 1``), ``--jobs`` jobs;
* ``ray``: the same jobs through ``--ray`` on a ``ray.cluster_utils.Cluster`` of a head and one
  worker node (one GPU advertised, one CPU), so both run one job at a time. Per job: the batch's wall
  time, the seconds inside ``create`` / ``demo`` (``job_s``, timed by the worker), and the rest
  (wall − Σ job_s, over the jobs: process start, imports, hand-over, transfers, writing at the head);
  overhead = ray's rest − local's rest (the run itself varies with the machine's load, the rest less);
* bytes per job: inputs to the node, checkpoints + progress log + previews to the head, the
  finished folder back (``batch_summary.json``'s metrics, counted by the backend);
* ``node_loss``: a head and two worker nodes, one job of 4 × ``--iterations``; once its first
  checkpoint has reached the head its node is removed; measured: seconds from the removal to the
  start of attempt 2 on the other node (``cluster_log.jsonl``) and the iteration it resumed from.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import threading
import time
from pathlib import Path

OBJECT_STORE = 80 * 1024 * 1024


def _settings(iterations: int) -> list[str]:
    return ["resolution=32", "meanface.resolution=32", "meanface.iterations=5", "meanface.head_iterations=5",
            "rgb_latent_resolution=16", "view_rings.turntable_frames=2", "outputs.size=32", f"iterations={iterations}",
            "checkpoint_every=5", "log_every=1"]


def _photos(folder: Path, count: int) -> Path:
    import numpy as np
    from PIL import Image
    from skimage.data import astronaut

    folder.mkdir(parents=True)
    for k in range(count):
        pixels = astronaut()[:, ::-1] if k % 2 else astronaut()
        Image.fromarray(np.ascontiguousarray(pixels)).resize((256, 256)).save(folder / f"p{k}.png")
    return folder


def _cluster(workers: int):
    import ray
    from ray.cluster_utils import Cluster

    nodes = Cluster(initialize_head=True, head_node_args=dict(num_cpus=1, num_gpus=0, object_store_memory=OBJECT_STORE))
    for _ in range(workers):
        nodes.add_node(num_cpus=1, num_gpus=1, object_store_memory=OBJECT_STORE)
    ray.init(address=nodes.address, log_to_driver=False)
    nodes.wait_for_nodes()
    return nodes


def _events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="JSON result path")
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--iterations", type=int, default=20)
    args = parser.parse_args()

    import ray

    from arc2avatar.cluster import RayOptions
    from arc2avatar.cluster.batch import ray_batch_backend
    from arc2avatar.pipeline.batch import create_batch

    root = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    os.environ.setdefault("ARC2AVATAR_CACHE", str(root / "cache"))
    photos = _photos(root / "photos", args.jobs)
    settings = _settings(args.iterations)
    result: dict = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "ray": ray.__version__,
                                "load_avg_start": os.getloadavg()}, "jobs": args.jobs, "settings": settings}

    started = time.perf_counter()
    local = create_batch(photos, root / "local", workers=1, threads_per_worker=1, oracle=True, overrides=settings)
    local_s = time.perf_counter() - started
    assert local.ok, local.table()

    nodes = _cluster(1)
    try:
        started = time.perf_counter()
        remote = create_batch(photos, root / "ray", oracle=True, overrides=settings,
                              backend=ray_batch_backend(RayOptions(nodes.address)))
        ray_s = time.perf_counter() - started
        assert remote.ok, remote.table()
    finally:
        ray.shutdown()
        nodes.shutdown()
    def outside(batch, wall: float) -> float:  # per job: the batch's wall time not spent in create/demo itself
        return round((wall - sum(j.metrics["job_s"] for j in batch.jobs)) / args.jobs, 2)

    per_job = {"local_wall_s": round(local_s / args.jobs, 2), "ray_wall_s": round(ray_s / args.jobs, 2),
               "local_outside_job_s": outside(local, local_s), "ray_outside_job_s": outside(remote, ray_s),
               "local_job_s": round(sum(j.metrics["job_s"] for j in local.jobs) / args.jobs, 2),
               "ray_job_s": round(sum(j.metrics["job_s"] for j in remote.jobs) / args.jobs, 2)}
    per_job["overhead_s"] = round(per_job["ray_outside_job_s"] - per_job["local_outside_job_s"], 2)
    keys = ("bytes_inputs", "bytes_to_head_progress", "bytes_result", "bytes_to_node_resume")
    moved = {k: int(statistics.mean(j.metrics.get(k, 0) for j in remote.jobs)) for k in keys}
    checkpoints = [e for e in _events(root / "ray" / "cluster_log.jsonl") if e["event"] == "checkpoint"]
    splats = statistics.mean(j.metrics["num_splats"] for j in remote.jobs)
    result.update(per_job=per_job, bytes_per_job=moved, checkpoints_per_job=len(checkpoints) / args.jobs,
                  bytes_per_checkpoint=int(statistics.mean(e["bytes"] for e in checkpoints)), splats=int(splats))

    nodes = _cluster(2)
    try:
        _photos(root / "one", 1)
        out = root / "loss"
        done: list = []
        batch = threading.Thread(target=lambda: done.append(create_batch(
            root / "one", out, oracle=True, overrides=_settings(4 * args.iterations),
            backend=ray_batch_backend(RayOptions(nodes.address, progress_s=0.5)))))
        batch.start()
        log = out / "cluster_log.jsonl"
        while not any(e["event"] == "checkpoint" for e in _events(log)):
            time.sleep(0.1)
        start = next(e for e in _events(log) if e["event"] == "start")
        node = next(n for n in nodes.worker_nodes if n.node_id.startswith(start["node"].split("/")[-1]))
        lost_at = time.time()
        nodes.remove_node(node)
        batch.join()
        assert done and done[0].ok
        starts = [e for e in _events(log) if e["event"] == "start"]
        result["node_loss"] = {"seconds_to_running_again": round(starts[1]["t"] - lost_at, 2),
                               "resumed_from_iteration": starts[1]["resume_iteration"],
                               "iterations": 4 * args.iterations, "bytes_to_new_node": starts[1]["bytes_to_node"]}
    finally:
        ray.shutdown()
        nodes.shutdown()
    result["machine"]["load_avg_end"] = os.getloadavg()
    print(json.dumps(result, indent=2))
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
