"""Shared test fixtures.

Real data (annotations, GloVe vectors) lives beside the checkout in ``../shared/data``; tests that
need it skip cleanly when it is absent. ``CMAGROUNDING_SHARED_DATA`` overrides the location.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    return Path(os.environ.get("CMAGROUNDING_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real annotations and word vectors; skips the test when it is absent."""
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(f"real data folder not found at {path} (set CMAGROUNDING_SHARED_DATA)")
    return path


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op thread for a module: on a shared, oversubscribed CPU OpenMP's spinning
    barriers make two threads many times slower than one for tiny inputs."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
