"""docs/intake.md (README links it as the page on exports as schools send them) runs: its commands, and its profile
excerpt is the shipped profile's."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
INTAKE = ROOT / "docs" / "intake.md"
SECTION = INTAKE.read_text(encoding="utf-8")


def _blocks(language: str) -> list[str]:
    """The bodies of the page's ```language blocks, in order."""
    return re.findall(rf"```{language}\n(.*?)```", SECTION, flags=re.S)


def test_the_profile_excerpt_is_what_configs_profiles_field_yaml_says():
    excerpt = yaml.safe_load(_blocks("yaml")[0])["tables"]
    shipped = yaml.safe_load((ROOT / "configs" / "profiles" / "field.yaml").read_text(encoding="utf-8"))["tables"]
    assert excerpt, "docs/intake.md shows no profile"
    for table, options in excerpt.items():
        for option, value in options.items():
            if isinstance(value, dict):
                for key, mapped in value.items():
                    assert shipped[table][option][key] == mapped, (table, option, key)
            else:
                assert shipped[table][option] == value, (table, option)


def test_the_commands_of_the_section_run_as_written(tmp_path):
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RISK_", "MLFLOW_"))}
    outputs = []
    lines = [line for line in _blocks("sh")[0].splitlines() if line.strip()]
    assert len(lines) == 4
    for line in lines:
        command = line.replace("risk ", f"{sys.executable} -m risk ", 1)
        done = subprocess.run(["bash", "-c", command], cwd=tmp_path, env={**env, "COLUMNS": "200"},
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
        outputs.append(done.stdout)
    synth, inspect, validate, contract = outputs
    assert "xlsx" in synth and "cp874" in synth
    assert "cp874" in inspect and "ข้อมูลนักเรียน" in inspect
    report = (tmp_path / "data" / "field-validated" / "validation_report.json").read_text(encoding="utf-8")
    assert '"format": "xlsx"' in report and '"encoding": "cp874"' in report
    assert "household" in validate and "Traceback" not in validate
    assert "date_order" in contract and "enrollments" in contract
