"""``risk promote``: the challenger becomes champion only when it is not worse on the same held-out term.

The training run of a challenger scored the champion of that moment on its own
held-out term (``test.champion.*`` metrics, tag ``evaluated_champion_version``),
so the comparison is like for like. The criteria are margins in
``configs/train.yaml`` (``promotion``); the first model ever becomes champion. A
challenger whose class policy misses a target the champion met (on that held-out
term, or on its own calibration term) is refused: :func:`risk.models.promise.promise_reasons`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from risk.models.promise import promise_reasons
from risk.models.settings import PromotionSettings
from risk.models.tracking import TrackingError

__all__ = ["Promotion", "promote"]


@dataclass
class Promotion:
    """The decision and every comparison behind it, in words."""

    promoted: bool
    challenger: str
    champion_before: str | None
    reasons: list[str] = field(default_factory=list)

    def summary_lines(self) -> list[str]:
        verdict = (f"version {self.challenger} is now champion" if self.promoted
                   else f"version {self.challenger} was NOT promoted; champion stays version {self.champion_before}")
        return [verdict, *(f"  {r}" for r in self.reasons)]


def _alias(client: MlflowClient, name: str, alias: str) -> str | None:
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def promote(model_name: str, criteria: PromotionSettings) -> Promotion:
    """Move ``champion`` to the ``challenger`` when it passes ``criteria``; says why either way."""
    client = MlflowClient()
    challenger = _alias(client, model_name, "challenger")
    if challenger is None:
        raise TrackingError(f"model {model_name!r} has no challenger in the registry: run `risk train` first")
    champion = _alias(client, model_name, "champion")
    if champion is None:
        client.set_registered_model_alias(model_name, "champion", challenger)
        return Promotion(True, challenger, None, ["there was no champion: the first model becomes champion"])
    if champion == challenger:
        return Promotion(False, challenger, champion, ["the challenger is already the champion"])
    run = client.get_run(client.get_model_version(model_name, challenger).run_id)
    evaluated = run.data.tags.get("evaluated_champion_version", "")
    if evaluated != champion:
        return Promotion(False, challenger, champion, [
            f"the challenger was judged beside version {evaluated or 'none'}, but the champion is now version "
            f"{champion}: retrain so both are scored on the same held-out term"])
    reasons, passed = _compare(run.data.metrics, criteria)
    by = next((k.split(".")[1].split(":")[0] for k in run.data.params if k.startswith("policy.") and ":" in k), None)
    broken = promise_reasons(run.data.metrics, client.get_run(client.get_model_version(model_name, champion).run_id)
                             .data.metrics, by)
    reasons, passed = reasons + broken, passed and not broken
    if passed:
        client.set_registered_model_alias(model_name, "champion", challenger)
        client.set_model_version_tag(model_name, challenger, "promoted_over", champion)
    return Promotion(passed, challenger, champion, reasons)


def _compare(metrics: dict[str, float], criteria: PromotionSettings) -> tuple[list[str], bool]:
    """Each criterion as a sentence, and whether all hold."""
    checks = [("roc_auc", "ROC AUC", -criteria.max_auc_drop, True),
              ("ece", "calibration error (ECE)", criteria.max_ece_rise, False),
              ("recall_top10", "recall in the top 10%", -criteria.max_recall_top10_drop, True)]
    reasons, passed = [], True
    for key, words, margin, higher_is_better in checks:
        new, old = metrics.get(f"test.model.{key}"), metrics.get(f"test.champion.{key}")
        if new is None or old is None:
            reasons.append(f"{words}: not measured for both models; refused")
            passed = False
            continue
        ok = new >= old + margin if higher_is_better else new <= old + margin
        passed &= ok
        relation = "at least" if higher_is_better else "at most"
        reasons.append(f"{'ok' if ok else 'WORSE'}: {words} {new:.4f} vs champion {old:.4f} "
                       f"(needs {relation} {old + margin:.4f})")
    return reasons, passed
