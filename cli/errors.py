"""The one error type the CLI turns into a single line on stderr, and what keeps it one."""

from __future__ import annotations

import unicodedata


class CliError(Exception):
    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def one_line(text: str) -> str:
    """`text` as one line: control characters and line or paragraph separators, which a
    manifest's keys and values may hold and messages quote, written as Python escapes."""
    return "".join(_escaped(ch) for ch in text)


def _escaped(ch: str) -> str:
    if unicodedata.category(ch) in ("Cc", "Zl", "Zp"):
        return repr(ch)[1:-1]
    return ch
