"""A progress bar for `hatd export` and `hatd import` on standard error, drawn only when that is a
terminal (a pipe or a log file gets nothing, not a stream of carriage returns)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

# Redraw at most this often: drawing costs more than counting.
INTERVAL = 0.1
WIDTH = 30


class ProgressBar:
    """Rows done of the total, the section under way and the rate, on one line redrawn in place."""

    def __init__(self, verb: str, stream: TextIO | None = None) -> None:
        self.verb = verb
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty()
        self.total = 0
        self.done = 0
        self.section = ""
        self.started = time.monotonic()
        self.drawn = 0.0

    def start(self, total_rows: int) -> None:
        self.total, self.done, self.started = total_rows, 0, time.monotonic()
        self._draw(force=True)

    def advance(self, section: str, rows: int) -> None:
        self.section = section
        self.done += rows
        self._draw()

    def finish(self) -> None:
        """The last state, and the line ended, so later output starts on a line of its own."""
        if self.enabled:
            self._draw(force=True)
            self.stream.write("\n")
            self.stream.flush()

    def _draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not force and now - self.drawn < INTERVAL):
            return
        self.drawn = now
        fraction = min(self.done / self.total, 1.0) if self.total else 1.0
        filled = int(fraction * WIDTH)
        rate = self.done / max(now - self.started, 1e-9)
        self.stream.write(
            f"\r{self.verb} [{'#' * filled}{'.' * (WIDTH - filled)}] {fraction:4.0%} "
            f"{self.done:,}/{self.total:,} rows, {rate:,.0f} rows/s  {self.section:<28}"
        )
        self.stream.flush()
