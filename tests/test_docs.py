"""README and docs/ hold together: every link resolves, and README's command table is the CLI's.

The table in README's "The command line" names one example per command. Each example
is parsed by the real command line (click's parser behind typer, without running the
command), so an option renamed or removed in the code fails here before a user finds
it. The Service section's lines and docs/intake.md's commands are run for real by
``test_serve_examples.py`` and ``test_readme_intake.py``.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
import typer.main

from risk.cli import app

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, ROOT / "bench" / "RESULTS.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)\s]*)?\)")


def section(text: str, title: str) -> str:
    """The body of the ``## title`` section of ``text`` (up to the next ``## ``)."""
    return text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def command_rows() -> list[tuple[str, str]]:
    """(command, example) of each row of README's command table, in order."""
    rows = re.findall(r"^\| `risk ([a-z-]+)` \|[^|]*\| `([^`]+)` \|$",
                      section(README.read_text(encoding="utf-8"), "The command line"), flags=re.M)
    assert rows, "README's command table was not found"
    return rows


def cli() -> click.Group:
    return typer.main.get_command(app)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    targets = [t for t in LINK.findall(page.read_text(encoding="utf-8")) if "://" not in t]
    missing = [t for t in targets if not (page.parent / t).exists()]
    assert not missing, f"{page.relative_to(ROOT)} links to files that are not there: {missing}"


def test_readme_links_every_page_of_docs():
    linked = {Path(t).name for t in LINK.findall(README.read_text(encoding="utf-8"))}
    assert {p.name for p in (ROOT / "docs").glob("*.md")} <= linked


def test_the_command_table_names_every_command_once():
    names = [name for name, _ in command_rows()]
    assert sorted(names) == sorted(cli().commands), "README's command table and `risk --help` differ"
    assert len(names) == len(set(names))


@pytest.mark.parametrize(("name", "example"), command_rows(), ids=[name for name, _ in command_rows()])
def test_each_example_is_accepted_by_its_command(name, example):
    words = shlex.split(example)
    assert words[:2] == ["risk", name], f"the example of `risk {name}` runs another command: {example}"
    command, args = cli().commands[name], words[2:]
    while isinstance(command, click.Group):  # `risk keys list`: down to the subcommand named next
        assert args and args[0] in command.commands, f"`risk {name}` needs a subcommand: {example}"
        command, args = command.commands[args[0]], args[1:]
    command.make_context(f"risk {name}", args)  # a usage error (unknown option, bad value) raises here
