"""Avatar jobs on a Ray cluster (issue 29; docs/cluster.md): ``create-batch --ray``, ``serve --ray``.

The default engine stays the local worker pool (``pipeline.batch``); this package is the second
implementation of its seam (``pipeline.batch.JobBackend``). Ray (https://docs.ray.io) does the
scheduling, placement and fault detection; what is written here is only what Ray does not know
about our jobs:

* ``spec``: what one job is (``RemoteJob``), the cluster options (``RayOptions``), the one-line
  message when Ray is not installed;
* ``node``: the task body that runs on a worker node: inputs into a private scratch folder, the
  pipeline's own ``create`` / ``demo`` (resumed from the checkpoint the head holds), every new
  checkpoint (and the progress log, and a preview) sent to the head, the finished folder returned;
* ``head``: the head's side: the ``Inbox`` actor (pinned to the head node) that writes what the
  nodes send into the head's folders, and ``RayBackend`` that submits tasks (``num_gpus=1``, or
  ``num_cpus`` on a CPU-only cluster, plus custom resources), writes each finished folder into
  place and cancels tasks.

No shared filesystem is assumed: everything a node needs travels with the task, everything the
head keeps travels back to it.
"""

from __future__ import annotations

from arc2avatar.cluster.spec import RayOptions, RemoteJob, parse_resources, require_ray

__all__ = ["RayOptions", "RemoteJob", "parse_resources", "require_ray"]
