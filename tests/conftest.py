"""Fixtures shared by several test files (read-only inputs, built once per session)."""

from __future__ import annotations

import pytest

from arc2avatar.testing.prior_weights import write_random_weights


@pytest.fixture(scope="session")
def weights(tmp_path_factory):
    """Tiny random prior weights in the real layouts (the fine-tuning tests' models)."""
    return write_random_weights(tmp_path_factory.mktemp("ft-weights"), "tiny", seed=0)


@pytest.fixture(scope="session")
def dataset(tmp_path_factory):
    """A two-identity fine-tuning dataset of 6 views at 16² each (never written to by the tests)."""
    from test_finetune_dataset import make_identity

    root = tmp_path_factory.mktemp("ft-data")
    make_identity(root / "p0", views=6, side=16, seed=0)
    make_identity(root / "p1", views=6, side=16, seed=1)
    return root
