"""What every benchmark backend provides: whether it runs here, its precisions and copy modes, what
its numbers mean, and one interleaved measurement of the models."""

from __future__ import annotations

from ....errors import RftrtError
from ..progress import Progress
from ..results import BackendInfo, BenchSettings

__all__ = ["Backend"]


class Backend:
    """One way of running the models. Subclasses implement :meth:`available` and :meth:`measure`."""

    name: str = ""
    summary: str = ""
    timing: str = ""
    precisions: tuple[str, ...] = ("fp32",)
    default_precision: str = "fp32"
    copies_default: str = "n/a"
    copies_choices: tuple[str, ...] = ()
    default_batches: tuple[int, ...] = (1, 8)
    default_settings: BenchSettings = BenchSettings()

    def available(self) -> tuple[bool, str]:
        raise NotImplementedError

    def copies(self, settings: BenchSettings) -> str:
        if settings.copies is None:
            return self.copies_default
        if settings.copies not in self.copies_choices:
            raise RftrtError(
                f"backend {self.name} cannot {settings.copies} host↔device copies "
                f"({'choices: ' + ', '.join(self.copies_choices) if self.copies_choices else 'its inputs live in host memory'})"
            )
        return settings.copies

    def check_precision(self, precision: str) -> None:
        if precision not in self.precisions:
            raise RftrtError(f"backend {self.name} runs {', '.join(self.precisions)}, not {precision}")

    def info(self, precision: str, settings: BenchSettings) -> BackendInfo:
        return BackendInfo(self.name, self.device(), precision, self.timing, self.copies_text(settings))

    def device(self) -> str:
        return "CPU"

    def copies_text(self, settings: BenchSettings) -> str:
        mode = self.copies(settings)
        return {"include": "included", "exclude": "excluded"}.get(mode, mode)

    def measure(
        self,
        models: list[str],
        resolution: int,
        batches: list[int],
        precision: str,
        settings: BenchSettings,
        progress: Progress,
    ) -> dict[str, dict[int, list[list[float]]]]:
        """Samples per model and batch size, per round, from one interleaved run."""
        raise NotImplementedError
