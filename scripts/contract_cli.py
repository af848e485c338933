"""The command-line part of docs/contract.md, from the CLI itself, so that the contract and the
code cannot drift apart: ``.venv/bin/python scripts/contract_cli.py`` prints the block that
belongs between the ``cli:begin`` / ``cli:end`` markers, ``--write`` puts it there
(tests/unit/test_contract.py checks it)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer.main

from recstream.cli import app


def _default(param: Any) -> str:
    if param.required:
        return "required"
    if getattr(param, "is_flag", False):
        return "flag"
    value = param.default
    if value is None or callable(value):
        return "—"
    if isinstance(value, (list, tuple)):
        value = ",".join(map(str, value))
    return f"`{value}`"


def _rows(command: Any) -> list[str]:
    rows = []
    for param in command.params:
        if param.param_type_name != "option" or param.name == "help":
            continue
        names = " / ".join(f"`{o}`" for o in [*param.opts, *param.secondary_opts])
        text = " ".join((param.help or "").split()).replace("|", "\\|")
        rows.append(f"| {names} | {_default(param)} | {text} |")
    return rows


def _walk(command: Any, path: str) -> list[str]:
    if hasattr(command, "commands"):  # a group (typer vendors its own click)
        out = []
        for name in sorted(command.commands):
            out += _walk(command.commands[name], f"{path} {name}")
        return out
    lines = [f"### `{path}`", ""]
    summary = " ".join((command.help or "").split("\n\n")[0].split())
    if summary:
        lines += [summary, ""]
    rows = _rows(command)
    if rows:
        lines += ["| flag | default | meaning |", "|---|---|---|", *rows, ""]
    return lines


def cli_block() -> str:
    return "\n".join(_walk(typer.main.get_command(app), "recstream")).rstrip() + "\n"


def write(contract: Path) -> None:
    text = contract.read_text()
    begin, end = "<!-- cli:begin -->\n", "<!-- cli:end -->"
    start, stop = text.index(begin) + len(begin), text.index(end)
    contract.write_text(text[:start] + cli_block() + text[stop:])


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        write(Path(__file__).resolve().parents[1] / "docs" / "contract.md")
    else:
        print(cli_block(), end="")
