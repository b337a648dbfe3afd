"""The `recsys` app run in the test's own process, for cases that check a command's output only
(no 2-4 s cold start). Cases about exit codes, signals or an edited copy of the package keep the
subprocess."""

from __future__ import annotations

import os
from typing import NamedTuple

from typer.testing import CliRunner

from recsys_assets.cli import app


class InProcess(NamedTuple):
    """The fields of a `subprocess.CompletedProcess` the tests read."""

    returncode: int
    stdout: str
    stderr: str


def recsys_here(args: list[str], env: dict[str, str] | None = None, monkeypatch=None) -> InProcess:
    """Run `recsys args` here. With `env` (and pytest's `monkeypatch`), the RECSYS_*/OPENAI_*
    variables are exactly `env`'s, as in a subprocess given `env`; without, the test's own."""
    if env is not None:
        for var in [v for v in os.environ if v.startswith(("RECSYS_", "OPENAI_"))]:
            if var not in env:
                monkeypatch.delenv(var)
        for var, value in env.items():
            if var.startswith(("RECSYS_", "OPENAI_")):
                monkeypatch.setenv(var, value)
    res = CliRunner().invoke(app, args)
    return InProcess(res.exit_code, res.stdout, res.stderr)
