"""Shared check for the CLI tests: bad input exits 2 with one line on stderr."""

import pytest

from dina.cli.main import main


@pytest.fixture
def cli_fails(capsys):
    """`cli_fails(argv, match)`: `dina argv` exits 2 and prints exactly one line containing `match`."""

    def check(argv, match):
        assert main([str(a) for a in argv]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and match in err, err

    return check
