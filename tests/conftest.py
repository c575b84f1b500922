"""Fixtures shared by several test files (read-only inputs, built once per session and per xdist
worker) and the ``gpu`` marker's rule. Imports are lazy, so the AST-only tests (architecture, docs)
collect and run without torch."""

from __future__ import annotations

import pytest


# The longest test files (minutes each on 2 cores), started first: with pytest-xdist's
# ``--dist loadfile`` a file runs on one worker, so a long file left to the end runs alone while
# the other worker idles (the identity proof alone is ≈ 6–8 min).
LONG_FILES = ("test_evaluate_proof.py", "test_pipeline_run.py", "test_cluster.py", "test_serve.py")


def pytest_collection_modifyitems(config, items) -> None:
    """The long files go first (``LONG_FILES``); ``@pytest.mark.gpu`` tests are skipped where no
    CUDA device is (torch is imported only when such a test was collected)."""
    rank = {name: k for k, name in enumerate(LONG_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order
    marked = [item for item in items if item.get_closest_marker("gpu")]
    if not marked:
        return
    import torch

    if not torch.cuda.is_available():
        for item in marked:
            item.add_marker(pytest.mark.skip(reason="needs a CUDA device"))


@pytest.fixture(scope="session")
def weights(tmp_path_factory):
    """Tiny random prior weights in the real layouts (the fine-tuning tests' models)."""
    from arc2avatar.testing.prior_weights import write_random_weights

    return write_random_weights(tmp_path_factory.mktemp("ft-weights"), "tiny", seed=0)


@pytest.fixture(scope="session")
def dataset(tmp_path_factory):
    """A two-identity fine-tuning dataset of 6 views at 16² each (never written to by the tests)."""
    from arc2avatar.testing.finetune_data import write_synthetic_identity

    root = tmp_path_factory.mktemp("ft-data")
    write_synthetic_identity(root / "p0", views=6, side=16, seed=0)
    write_synthetic_identity(root / "p1", views=6, side=16, seed=1)
    return root
