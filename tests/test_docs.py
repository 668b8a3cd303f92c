"""README and docs/ hold together: every link resolves, and README's command table is the CLI's.

The table in README's "The command line" names one example per command. Each example
is parsed by the real command line (click's parser behind typer, without running the
command), so an option renamed or removed in the code fails here before a user finds
it. So is every command README's prose writes out with an option (the pilot section's
`risk pilot plan …`, `risk synth --continue …`); typer parses with its own copy of click, so
groups are told by their subcommands, not by click's classes (the table's `risk keys list`
went unchecked past its group until this was seen). The Service section's lines and docs/intake.md's commands are run for real by
``test_serve_examples.py`` and ``test_readme_intake.py``.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

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


def cli() -> typer.core.TyperGroup:
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
    while hasattr(command, "commands"):  # `risk keys list`: down to the subcommand (typer has its own click: no click.Group)
        assert args and args[0] in command.commands, f"`risk {name}` needs a subcommand: {example}"
        command, args = command.commands[args[0]], args[1:]
    command.make_context(f"risk {name}", args)  # a usage error (unknown option, bad value) raises here


def inline_commands() -> list[str]:
    """Every inline ```risk …``` span of README that gives an option (the command table's rows aside)."""
    text = README.read_text(encoding="utf-8").replace(section(README.read_text(encoding="utf-8"), "The command line"), "")
    return sorted({span for span in re.findall(r"`(risk [a-z][^`]*)`", text) if " --" in span})


def test_readme_names_commands_with_options_in_its_prose():
    assert len(inline_commands()) >= 5, "README's prose no longer shows commands with options: is the pattern stale?"


@pytest.mark.parametrize("example", inline_commands())
def test_each_command_in_readme_prose_is_accepted(example):
    """A command written out in README's prose (`risk pilot plan --term … --seed 7`) parses with its command's options.

    A span may name one option of a command and leave out the ones it requires (`risk features --engine spark`):
    a missing option passes; an unknown option, a bad value or a wrong subcommand fails.
    """
    words = shlex.split(example)
    command, args = cli().commands.get(words[1]), words[2:]
    assert command is not None, f"README names a command the CLI does not have: {example}"
    while hasattr(command, "commands"):
        assert args and args[0] in command.commands, f"`{example}` needs a subcommand of `{words[1]}`"
        command, args = command.commands[args[0]], args[1:]
    try:
        command.make_context(example, args)
    except Exception as exc:  # typer parses with its own copy of click: its MissingParameter is not click's
        if type(exc).__name__ != "MissingParameter":
            raise
