"""Fixtures shared by several test files (read-only inputs, built once per session and per xdist
worker) and the ``gpu`` marker's rule. Imports are lazy, so the AST-only tests (architecture, docs)
collect and run without torch."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config, items) -> None:
    """``@pytest.mark.gpu`` tests are skipped where no CUDA device is (torch is imported only when
    such a test was collected)."""
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
