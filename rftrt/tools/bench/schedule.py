"""The interleaved schedule every backend runs (warm-up, then rounds alternating the order of the
models) and the status line that follows it."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, Protocol

__all__ = ["Progress", "Timed", "interleave"]


class Progress:
    """One status line on stderr: rewritten in place on a terminal, one line per step otherwise."""

    def __init__(self, enabled: bool = True, stream: Any = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self._width = 0
        self._last = ""

    def update(self, text: str, final: bool = False) -> None:
        if not self.enabled:
            return
        if self.tty:
            padding = " " * max(0, self._width - len(text))
            self.stream.write(f"\r{text}{padding}" + ("\n" if final else ""))
            self._width = 0 if final else len(text)
            self.stream.flush()
        elif final or text.split(" round ")[0] != self._last.split(" round ")[0]:
            self.stream.write(text + "\n")
            self.stream.flush()
        self._last = text

    def done(self) -> None:
        if self.enabled and self.tty and self._width:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0


class Timed(Protocol):
    """Runs ``iterations`` timed iterations of one model at one batch size; returns ms per iteration."""

    def __call__(self, iterations: int) -> list[float]: ...


def interleave(
    timers: dict[str, Timed],
    warmup: int,
    rounds: int,
    iterations: int,
    on_round: Callable[[int], None] | None = None,
) -> dict[str, list[list[float]]]:
    """Warm every timer up, then run ``rounds`` rounds in which each runs ``iterations`` timed
    iterations, alternating the order of the timers each round. Returns the samples per round."""
    for timer in timers.values():
        if warmup:
            timer(warmup)
    keys = list(timers)
    samples: dict[str, list[list[float]]] = {key: [] for key in keys}
    for index in range(rounds):
        for key in keys if index % 2 == 0 else keys[::-1]:
            samples[key].append([float(x) for x in timers[key](iterations)])
        if on_round is not None:
            on_round(index + 1)
    return samples
