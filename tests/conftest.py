import os

import pytest
from hypothesis import settings

# Reproducible property tests: the same examples on every run and machine.
settings.register_profile("rnnlab", derandomize=True, print_blob=True)
settings.load_profile("rnnlab")

# One thread per test process: two processes each using two threads fight on 2 cores.
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def _torch_threads():
    import torch

    torch.set_num_threads(1)
    yield
