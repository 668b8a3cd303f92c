"""The documented contract is the contract in code."""

from __future__ import annotations

from pathlib import Path

from risk.data.contract import TABLES
from risk.data.docs import BEGIN, END, contract_markdown

README = Path(__file__).resolve().parent.parent / "synthetic_data" / "README.md"


def test_readme_contract_section_is_generated_from_code():
    text = README.read_text(encoding="utf-8")
    section = text[text.index(BEGIN): text.index(END) + len(END)]
    assert section == contract_markdown(), "run: risk contract, and paste into synthetic_data/README.md"


def test_every_contract_column_is_documented():
    text = contract_markdown()
    for table in TABLES.values():
        for column in table.columns:
            assert f"`{column.name}`" in text
