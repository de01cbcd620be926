"""Progress of a long job: a tqdm bar on a terminal, else a plain line every `every` seconds.

Plain lines read well in CI and Kaggle logs, where a bar would print hundreds of carriage returns:

    shard: 120/2000 recordings (6%), 1.52 h of audio, 0.61 audio-h/min, 150 s elapsed, ~2350 s left

The audio part appears once `advance` has been given seconds of audio.
"""

from __future__ import annotations

import sys
import time


class Progress:
    """`unit` done out of `total` for the job `name` (the prefix of its lines).

    A tqdm bar when stderr is a terminal (or `tty` is True), else a plain `log` line at most every
    `every` seconds (0: at every step). `message` prints a line without breaking the bar. Use it
    as a context manager, or call `close`.
    """

    def __init__(
        self,
        total: int,
        log,
        every: float = 30.0,
        tty: bool | None = None,
        *,
        name: str = "shard",
        unit: str = "recordings",
    ):
        self.total, self.log, self.every, self.name, self.unit = total, log, every, name, unit
        self.done, self.seconds, self.timed = 0, 0.0, False
        self.started = self.last = time.monotonic()
        self.bar = None
        if total and (sys.stderr.isatty() if tty is None else tty):
            from tqdm import tqdm

            self.bar = tqdm(
                total=total, unit=unit[:3], desc=name, file=sys.stderr, dynamic_ncols=True
            )

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def advance(self, count: int = 1, seconds: float | None = None) -> None:
        """Count `count` more, holding `seconds` of audio where given."""
        self.done += count
        if seconds is not None:
            self.seconds += seconds
            self.timed = True
        if self.bar is not None:
            if self.timed:
                self.bar.set_postfix_str(f"{self.seconds / 3600:.2f} h audio", refresh=False)
            self.bar.update(count)
        elif time.monotonic() - self.last >= self.every:
            self.last = time.monotonic()
            self.log(self.line())

    def line(self) -> str:
        """One plain progress line."""
        elapsed = max(time.monotonic() - self.started, 1e-9)
        left = elapsed * (self.total - self.done) / self.done if self.done else float("nan")
        audio = (
            f", {self.seconds / 3600:.2f} h of audio, {self.seconds / 60 / elapsed:.2f} audio-h/min"
            if self.timed
            else ""
        )
        return (
            f"{self.name}: {self.done}/{self.total} {self.unit} ({100 * self.done / max(self.total, 1):.0f}%)"
            f"{audio}, {elapsed:.0f} s elapsed, ~{left:.0f} s left"
        )

    def message(self, text: str) -> None:
        """Log `text` (above the bar, where there is one)."""
        if self.bar is None:
            self.log(text)
            return
        with self.bar.external_write_mode(file=sys.stderr):
            self.log(text)

    def close(self) -> None:
        """Close the bar (a no-op for plain lines); safe to call twice."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None
