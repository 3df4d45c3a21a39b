"""What reaches a user when something goes wrong: one line on stderr and exit 1, whether the
error is one the CLI expected or a bug; the traceback only for who asks for it."""

from __future__ import annotations

import argparse

import pytest

from cli import main as cli_main
from cli.commands import apply
from cli.errors import CliError, one_line


def boom(args: argparse.Namespace) -> int:
    raise RuntimeError("boom\nsecond line")


def test_an_unexpected_error_is_one_line_with_a_hint(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("SKIFF_DEBUG", raising=False)
    monkeypatch.setattr(apply, "run_apply", boom)
    assert cli_main.main(["apply", "-f", "x.yaml"]) == 1
    assert capsys.readouterr().err == (
        "error: unexpected RuntimeError: boom (a bug in skiff; run with --v or SKIFF_DEBUG=1 "
        "for the traceback)\n")


@pytest.mark.parametrize("ask", [["--v"], []])
def test_the_traceback_is_for_who_asks(monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str],
                                       ask: list[str]) -> None:
    monkeypatch.setattr(apply, "run_apply", boom)
    if not ask:
        monkeypatch.setenv("SKIFF_DEBUG", "1")
    assert cli_main.main([*ask, "apply", "-f", "x.yaml"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):")
    assert "RuntimeError: boom" in err


def test_errors_print_as_one_line(monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    def refuse(args: argparse.Namespace) -> int:
        raise CliError('key "a\nb\u2028c\x1e" is bad')

    monkeypatch.setattr(apply, "run_apply", refuse)
    assert cli_main.main(["apply", "-f", "x.yaml"]) == 1
    assert capsys.readouterr().err == 'error: key "a\\nb\\u2028c\\x1e" is bad\n'


def test_one_line_keeps_printable_text() -> None:
    assert one_line("Ünïcode, tabs\tand\r\nbreaks\x85") == "Ünïcode, tabs\\tand\\r\\nbreaks\\x85"
