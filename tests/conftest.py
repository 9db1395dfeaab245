import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))  # shared test helpers (onnx_cache)


@pytest.fixture(autouse=True)
def _deterministic() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="session", autouse=True)
def _threads() -> None:
    # CI has 2 cores; more threads than cores only adds contention.
    torch.set_num_threads(2)


class _SharedTmp:
    """Folders for files several tests share (``mktemp`` as pytest's ``tmp_path_factory``), all removed
    when the session ends: pytest keeps ``tmp_path_factory``'s folders whatever the retention policy,
    which left tens of MB of exports in the temp folder after every run."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def mktemp(self, name: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.root))


@pytest.fixture(scope="session")
def shared_tmp() -> Iterator[_SharedTmp]:
    with tempfile.TemporaryDirectory(prefix="rftrt-tests-shared-") as root:
        yield _SharedTmp(Path(root))
