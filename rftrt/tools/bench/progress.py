"""The status line rf-bench shows while it measures."""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["Progress"]


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
