"""`dina bench audio`: bad arguments exit 2 with one line (the run itself is tested in tests/bench)."""


def test_bad_seconds_exit_2(cli_fails):
    cli_fails(["bench", "audio", "--seconds", "0"], "seconds must be in")
    cli_fails(["bench", "audio", "--seconds", "ten"], "expected a number of seconds")
