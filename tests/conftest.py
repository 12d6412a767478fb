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


@pytest.fixture(autouse=True)
def _restore_logging():
    """Examples and CLI mains run in-process configure logging for a user's terminal (basicConfig,
    filters on the root handlers, captureWarnings); undo it after each test so that no test's
    log capture depends on which tests ran before it."""
    import logging

    root = logging.getLogger()
    handlers = list(root.handlers)
    filters = {h: list(h.filters) for h in handlers}
    level = root.level
    yield
    for h in list(root.handlers):
        if h not in filters:
            root.removeHandler(h)
    for h, fs in filters.items():
        h.filters[:] = fs
    root.setLevel(level)
    logging.captureWarnings(False)
