"""The README's commands work for a newcomer who pastes them in order after the two commands.

Every `recsys ...` line of the README's shell blocks is parsed by the real command line (the
command, its options, their types and required arguments; nothing runs), the ones that need no
built warehouse are run for real in order on a fresh home, and the way `make demo` says to put
`recsys` on the PATH is checked to be in the README and to work.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from typer.main import get_command

from recsys_assets.cli import _register_optional, app

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
ACTIVATE = "source .venv/bin/activate"
# Need no warehouse, model or LLM: a newcomer's first minute, run as written, in this order.
RUN_FOR_REAL = (
    "generate-sample",
    "label ./data/restaurants.csv -o",
    "label ./data/restaurants.csv --dry-run",
    "label override --list",
    "ledger stats",
    "model status",
    "alerts",
)


def shell_blocks(text: str) -> list[str]:
    return re.findall(r"```(?:bash|sh|shell)\n(.*?)```", text, flags=re.S)


def readme_commands() -> list[str]:
    """The `recsys` lines of the README's shell blocks, comments removed, in order."""
    lines = []
    for block in shell_blocks(README):
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            if words and words[0] == "recsys":
                lines.append(line.split("   #")[0].strip())
    return lines


def argv(line: str) -> list[str]:
    """The line's arguments; `[--limit 200]` (an optional part) is passed, so it is checked too."""
    return [w.strip("[]") for w in shlex.split(line, comments=True)[1:]]


def parse_only(args: list[str]) -> int:
    """Exit code of `recsys ARGS` parsed by the real command tree with every command's body
    replaced by a no-op: 0 when it parses, 2 (click's usage error) for an unknown command or
    option, a missing argument or a bad value."""
    if not any(group.name == "label" for group in app.registered_groups):
        _register_optional()
    root = get_command(app)

    def stub(command) -> None:
        command.callback = lambda *_a, **_k: None
        for sub in getattr(command, "commands", {}).values():
            stub(sub)

    stub(root)
    try:
        root.main(args=args, prog_name="recsys")
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def test_the_readme_has_recsys_examples():
    commands = readme_commands()
    assert len(commands) >= 15
    for needed in ("recsys materialize", "recsys recommend", "recsys label", "recsys demo"):
        assert any(c.startswith(needed) for c in commands), needed


@pytest.mark.parametrize("line", readme_commands())
def test_readme_command_is_a_valid_invocation(line, capsys):
    assert parse_only(argv(line)) == 0, capsys.readouterr().err


@pytest.mark.parametrize(
    "bad",
    [
        "recsys label review -o queue.csv --limt 200",  # misspelled option
        "recsys materialise --select restaurants",  # no such command
        "recsys recommend --menu x",  # --name is required
        "recsys alerts -n ten",  # not a number
    ],
)
def test_the_check_refuses_what_the_cli_refuses(bad, capsys):
    assert parse_only(argv(bad)) == 2
    assert "Error:" in capsys.readouterr().err


def test_readme_says_how_to_put_the_cli_on_the_path_and_make_demo_ends_with_it():
    """Right after the two commands, the README says how `recsys` gets on the PATH; `make demo`
    ends by printing the same line; and that line really puts a working `recsys` on the PATH."""
    two_commands = README.index("make demo   #")
    after = README[two_commands : two_commands + 1200]
    assert ACTIVATE in after
    dry = subprocess.run(
        # the recipe, without installing; clean of the MAKEFLAGS/MAKELEVEL of a surrounding
        # `make test`, under which make would end with "Leaving directory"
        ["make", "--no-print-directory", "-n", "demo", "-o", ".venv/.installed-stamp"],
        cwd=REPO,
        env={k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert ACTIVATE in dry.stdout.strip().splitlines()[-1]
    venv = Path(sys.prefix)
    if venv.name != ".venv":
        pytest.skip(f"the tests do not run in a project .venv ({venv})")
    shell = subprocess.run(
        ["bash", "-c", f"cd {shlex.quote(str(venv.parent))} && {ACTIVATE} && recsys --help"],
        env={k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"} | {"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert shell.returncode == 0, shell.stderr
    assert "materialize" in shell.stdout and "recommend" in shell.stdout


def test_the_first_readme_commands_run_in_order_on_a_fresh_home(tmp_path):
    """What a newcomer can run before any rebuild, exactly as written, in the README's order."""
    home = tmp_path / "home"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RECSYS_", "OPENAI_", "MLFLOW_", "DAGSTER_"))
    }
    env |= {"RECSYS_HOME": str(home), "PYTHONPATH": str(REPO)}
    ran = []
    for line in readme_commands():
        rest = line.removeprefix("recsys ")
        if not rest.startswith(RUN_FOR_REAL):
            continue
        out = subprocess.run(
            [sys.executable, "-m", "recsys_assets.cli", *argv(line)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert out.returncode == 0, f"{line}\n{out.stdout[-1500:]}\n{out.stderr[-1500:]}"
        ran.append(line)
    assert {
        prefix for prefix in RUN_FOR_REAL for line in ran if line[7:].startswith(prefix)
    } == set(RUN_FOR_REAL)
    labeled = (tmp_path / "labeled.csv").read_text(encoding="utf-8").splitlines()
    assert labeled[0].startswith("restaurant_id") and len(labeled) > 1000
