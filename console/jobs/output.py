"""Terminal output made readable on a web page: ANSI escapes removed, carriage-return redraws collapsed."""

from __future__ import annotations

import codecs
import re
from typing import TYPE_CHECKING

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from console.jobs.models import Stream

if TYPE_CHECKING:
    from console.jobs.models import JobRun, OutputChunk

# CSI sequences (colours, cursor moves, erase), OSC sequences (titles, links) and lone two-byte escapes.
ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")


def collapse(line: str) -> str:
    """What a terminal would show for ``line``: each carriage return redraws from the line's start."""
    if "\x1b" in line:
        line = ANSI.sub("", line)
    if "\r" not in line:
        return line
    shown = ""
    for segment in line.split("\r"):
        shown = segment + shown[len(segment) :]
    return shown


class LineSplitter:
    """Turns a stream of bytes into complete, cleaned lines plus the unfinished line being drawn."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.pending = ""

    def feed(self, data: bytes) -> list[str]:
        text = self.pending + self._decoder.decode(data)
        if "\n" not in text:
            self.pending = self._bounded(text)
            return []
        *complete, pending = text.split("\n")
        self.pending = self._bounded(pending)
        if "\r" in text or "\x1b" in text:
            return [collapse(line) for line in complete]
        return complete

    @staticmethod
    def _bounded(text: str) -> str:
        """Keep an unfinished line small: a progress bar redrawn for an hour must not grow without end."""
        if len(text) < 8192:
            return text
        cut = text.rfind("\r")
        if cut > 0:
            return collapse(text[:cut]) + text[cut:]
        return text

    def finish(self) -> list[str]:
        text = self.pending + self._decoder.decode(b"", final=True)
        self.pending = ""
        return [collapse(text)] if text else []

    @property
    def current(self) -> str:
        """The unfinished line as it looks now (a progress bar mid-redraw)."""
        return collapse(self.pending)[-2000:]


TAIL_LINES = 1000


def tail(
    run: JobRun, *, before: int | None = None, after: int = 0, lines: int = TAIL_LINES
) -> tuple[list[OutputChunk], int | None]:
    """The last chunks of ``run`` between ``after`` and ``before`` holding at least ``lines`` lines, oldest first.

    Returns the chunks and the sequence number to ask "load earlier" for, or None when nothing between
    ``after`` and the first returned chunk was left out. Reads only the chunks it returns, so a run that
    printed a million lines costs what a short one costs.
    """
    chunks = run.chunks.filter(seq__gt=after).order_by("-seq")
    if before is not None:
        chunks = chunks.filter(seq__lt=before)
    picked: list[OutputChunk] = []
    total = 0
    for chunk in chunks[:500].iterator(chunk_size=20):
        picked.append(chunk)
        total += chunk.lines
        if total >= lines:
            break
    picked.reverse()
    earlier = picked[0].seq if picked and picked[0].seq > after + 1 else None
    return picked, earlier


def render_chunks(chunks: list[OutputChunk]) -> SafeString:
    """Chunks as the inside of a ``<pre>``: every byte escaped, stderr lines marked (in words for screen readers)."""
    parts = []
    for chunk in chunks:
        text = escape(chunk.text) + "\n"
        if chunk.stream == Stream.STDERR:
            parts.append(f'<span class="stderr" data-stream="stderr">{text}</span>')
        else:
            parts.append(text)
    return mark_safe("".join(parts))  # every piece of output above went through escape()
