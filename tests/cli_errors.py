"""The CLI's error contract, checked one way by every test that expects a refusal."""

from __future__ import annotations

import pytest

from pmoe_cli.app import main


def one_line_error(capsys, argv: list[str]) -> str:
    """Run `pmoe ARGV` in-process, expect exit 1 with exactly one `pmoe: error: ...` line on stderr; return it."""
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("pmoe: error: ") and err.count("\n") == 1, err
    return err
