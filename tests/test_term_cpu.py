"""``risk term``'s step table keeps each step's CPU seconds beside its wall seconds (the session's shared term).

On a shared host the wall clock of a step follows the load; its CPU seconds (this process and the
children it waited for) are the figure a benchmark can compare across runs.
"""

from __future__ import annotations

import json

from term_support import AS_OF


def test_each_step_keeps_its_cpu_seconds(term_run):
    kept = {s["step"]: s for s in json.loads((term_run.folder / f"term-{AS_OF}.json").read_text(encoding="utf-8"))}
    assert all(s["cpu_seconds"] >= 0 for s in kept.values())
    # Boosting and the feature SQL are work on this process's CPUs; an idle step's figure is not.
    assert kept["train"]["cpu_seconds"] > 0 and kept["features"]["cpu_seconds"] > 0
    assert "CPU s" in term_run.first.stdout
