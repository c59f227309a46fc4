"""Run the small-image tests of the data/metrics/baselines suites on one CPU thread.

Their tensors are tiny, so threads buy nothing, while on a busy shared 2-core runner OpenMP's
thread hand-offs made the same test 20x slower (measured: 3 s vs 55 s)."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
