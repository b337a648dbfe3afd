"""Code shape: no function under recsys_assets/ is longer than 80 lines without saying why.

Convention (issue 10): a function or method counts from its ``def`` line to the last line of its
body, docstring included (decorators not counted). Past 80 lines it must either be split into
well-named helpers, or carry in its docstring a sentence starting with "Long because", e.g.
"Long because typer declares each option in the signature." The failure names each offender as
``file:function:lines`` (methods and nested functions by their dotted qualified name).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "recsys_assets"
MAX_LINES = 80
REASON = re.compile(r"\bLong because\s+\S")  # the marker, followed by the reason itself


def _long_functions(source: str, rel: str) -> Iterator[tuple[str, int]]:
    """(file:qualified name, lines) of every function in `source` longer than MAX_LINES whose
    docstring gives no "Long because" reason."""
    tree = ast.parse(source, filename=rel)

    def visit(node: ast.AST, prefix: str) -> Iterator[tuple[str, int]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = f"{prefix}{child.name}"
                lines = (child.end_lineno or child.lineno) - child.lineno + 1
                if lines > MAX_LINES and not REASON.search(ast.get_docstring(child) or ""):
                    yield f"{rel}:{name}", lines
                yield from visit(child, f"{name}.")
            elif isinstance(child, ast.ClassDef):
                yield from visit(child, f"{prefix}{child.name}.")
            else:
                yield from visit(child, prefix)

    yield from visit(tree, "")


def _package_offenders() -> dict[str, int]:
    found: dict[str, int] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        found.update(_long_functions(path.read_text(encoding="utf-8"), rel))
    return found


def test_no_function_longer_than_80_lines_without_a_reason() -> None:
    offenders = _package_offenders()
    assert not offenders, (
        f"longer than {MAX_LINES} lines (def to end of body): split into helpers, or give the "
        'reason in the docstring with a sentence starting "Long because":\n'
        + "\n".join(f"{k}:{n}" for k, n in sorted(offenders.items()))
    )


def _function(name: str, body_lines: int, doc: str = "", indent: str = "") -> str:
    """Source of a function whose def-to-end span is 1 + (docstring) + body_lines lines."""
    head = f"{indent}def {name}():\n" + (f'{indent}    """{doc}"""\n' if doc else "")
    return head + "".join(f"{indent}    x{i} = {i}\n" for i in range(body_lines))


def test_the_check_counts_from_def_to_end_and_reads_the_reason() -> None:
    source = (
        _function("at_limit", 79)  # 80 lines: allowed
        + _function("over", 80)  # 81 lines
        + _function("with_doc", 79, doc="Docstring lines count too.")  # 81
        + _function("excused", 90, doc="Long because it is a flat table of cases.")
        + _function("no_reason_given", 90, doc="Long because")
        + "@decorator\n"
        + _function("decorated", 79)  # the decorator line is not counted: 80
        + "class K:\n"
        + _function("method", 85, indent="    ")
        + "async def outer():\n"
        + _function("inner", 85, indent="    ")
    )
    assert dict(_long_functions(source, "m.py")) == {
        "m.py:over": 81,
        "m.py:with_doc": 81,
        "m.py:no_reason_given": 92,
        "m.py:K.method": 86,
        "m.py:outer": 87,
        "m.py:outer.inner": 86,
    }
