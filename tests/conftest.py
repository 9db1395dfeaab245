import pytest
import torch


@pytest.fixture(autouse=True)
def _deterministic() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="session", autouse=True)
def _threads() -> None:
    # CI has 2 cores; more threads than cores only adds contention.
    torch.set_num_threads(2)
