"""Learning from treated outcomes (issue 30, deliverable 4): training rows whose student had an alert or an
action in the store are counted, and kept, down-weighted or left out; a pilot's wait-list arm stays whole.

The first tests mark hand-made training rows against a real store (SQLite) holding alerts, actions and a
pilot plan, so every count can be checked by hand. The others train on the synthetic world with such a
store (slow: the world fixture).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import duckdb
import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from conftest import FEATURES_YAML, WORLD_KEY, small_train_settings
from store_rows import hand_scoring_run

from risk.config import load_settings
from risk.features.catalog import load_catalog
from risk.models.card_views import treated_view
from risk.models.samples import outcome_connection
from risk.models.stages import draw_samples
from risk.models.train import train_model
from risk.models.treated import (
    TermWindow,
    Treatment,
    mark_treated,
    read_treatment,
    term_windows,
)
from risk.store import (
    PlanRecord,
    Store,
    import_actions,
    open_store,
    write_pilot,
)

TERM, NEXT = "2569-1", "2569-2"
WINDOWS = {TERM: TermWindow(dt.date(2026, 5, 16), dt.date(2026, 11, 1)),
           NEXT: TermWindow(dt.date(2026, 11, 1), dt.date(2027, 5, 16))}
NOW_SCHOOL, WAIT_SCHOOL = "1040100001", "1030200002"


# ---------------------------------------------------------------- a real store, written as the engine writes it
def scoring_run(store: Store, term: str, as_of: dt.date, scored: list[tuple[int, str]],
                alerted: list[tuple[int, str]], kind: str = "newly_at_risk") -> None:
    """A finished scoring run of ``term`` on ``as_of`` that scored ``scored`` and alerted ``alerted``."""
    hand_scoring_run(store, term, as_of, scored, alerted, kind)


def record_actions(store: Store, rows: list[tuple[int, str, dt.date]]) -> None:
    frame = pd.DataFrame({"row": range(1, len(rows) + 1), "student_key": [k for k, _, _ in rows],
                          "school_id": [None] * len(rows), "code": [c for _, c, _ in rows],
                          "acted_on": [d for _, _, d in rows], "note": [None] * len(rows)})
    assert import_actions(store, frame).stored == len(rows)


def wait_list_plan(store: Store, term: str, now: list[str], waiting: list[str]) -> None:
    plan = PlanRecord(pilot_id=f"pilot-{term}", term=term, share=0.5, strata=[], seed=1,
                      created_at=dt.datetime(2026, 5, 1, 8, 0))
    write_pilot(store, plan, pd.DataFrame({"school_id": now + waiting, "arm": ["alert_now"] * len(now)
                                           + ["wait_list"] * len(waiting), "stratum": "all"}))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path / 'risk.db'}")
    yield opened
    opened.close()


# Students 1-6, two sample points each in TERM, and student 1 again in NEXT. 1, 2, 3 and 6 are at
# the alert-now school, 4 and 5 at the wait-list school.
SCHOOL_OF = {1: NOW_SCHOOL, 2: NOW_SCHOOL, 3: NOW_SCHOOL, 4: WAIT_SCHOOL, 5: WAIT_SCHOOL, 6: NOW_SCHOOL}
META = pd.DataFrame({"student_key": [k for k in SCHOOL_OF for _ in range(2)] + [1],
                     "term": [TERM] * 12 + [NEXT],
                     "school_id": [SCHOOL_OF[k] for k in SCHOOL_OF for _ in range(2)] + [NOW_SCHOOL]})


def hand_checkable_store(store: Store) -> None:
    """1 alerted; 2 acted on; 3 both; 4 alerted while wait-listed (shown to no one); 5 acted on at the
    wait-list school; 6 acted on before the term began and told it had improved (no help asked)."""
    every = list(SCHOOL_OF.items())
    wait_list_plan(store, TERM, [NOW_SCHOOL], [WAIT_SCHOOL])
    scoring_run(store, TERM, dt.date(2026, 7, 10), every, [(1, NOW_SCHOOL), (3, NOW_SCHOOL), (4, WAIT_SCHOOL)])
    scoring_run(store, TERM, dt.date(2026, 7, 17), every, [(6, NOW_SCHOOL)], kind="improved")
    record_actions(store, [(2, "home_visit", dt.date(2026, 8, 1)), (3, "counselling", dt.date(2026, 7, 20)),
                           (3, "home_visit", dt.date(2026, 7, 21)), (5, "payment_check", dt.date(2026, 9, 1)),
                           (6, "home_visit", dt.date(2026, 4, 1))])


def rows_of(mask: np.ndarray) -> list[tuple[int, str]]:
    return sorted(zip(META.loc[mask, "student_key"].tolist(), META.loc[mask, "term"].tolist(), strict=True))


def test_treated_rows_are_counted_by_kind_in_their_terms_window(store) -> None:
    hand_checkable_store(store)
    treated = mark_treated(META, read_treatment(store, WINDOWS), WINDOWS)
    # 4's alert was hidden by the wait-list; 6's action came before the term and its alert asked nothing.
    assert rows_of(treated.alerted) == [(1, TERM), (1, TERM), (3, TERM), (3, TERM)]
    assert rows_of(treated.acted) == [(2, TERM), (2, TERM), (3, TERM), (3, TERM), (5, TERM), (5, TERM)]
    assert rows_of(treated.wait_list) == [(4, TERM), (4, TERM), (5, TERM), (5, TERM)]
    # Student 1's row of the next term had no help in that term's window.
    assert treated.counts() == {"rows": 13, "treated": 8, "alerted": 4, "acted": 6, "wait_list": 4,
                                "share": 8 / 13}


def test_untreated_only_leaves_out_exactly_the_helped_rows_and_keeps_the_wait_list_arm(store) -> None:
    hand_checkable_store(store)
    treated = mark_treated(META, read_treatment(store, WINDOWS), WINDOWS, choice="untreated_only")
    kept = treated.kept_rows()
    assert rows_of(~kept) == [(1, TERM), (1, TERM), (2, TERM), (2, TERM), (3, TERM), (3, TERM)]
    # 5 was acted on but sits in the wait-list arm: kept with the whole arm.
    assert rows_of(kept) == [(1, NEXT), (4, TERM), (4, TERM), (5, TERM), (5, TERM), (6, TERM), (6, TERM)]
    assert treated.fit_weight() is None


def test_down_weight_weighs_the_helped_rows_only_and_keep_changes_nothing(store) -> None:
    hand_checkable_store(store)
    treatment = read_treatment(store, WINDOWS)
    weighted = mark_treated(META, treatment, WINDOWS, choice="down_weight", down_weight=0.25)
    weight = weighted.fit_weight()
    assert rows_of(weight == 0.25) == rows_of(weighted.changed) and int((weight == 1.0).sum()) == 7
    assert weighted.kept_rows() is None
    kept = mark_treated(META, treatment, WINDOWS, choice="keep")
    assert kept.kept_rows() is None and kept.fit_weight() is None


def test_no_store_and_an_empty_store_treat_no_row_and_say_so(store) -> None:
    for treatment in (read_treatment(None, WINDOWS), read_treatment(store, WINDOWS)):
        treated = mark_treated(META, treatment, WINDOWS, choice="untreated_only")
        assert treated.counts()["treated"] == 0 and treated.kept_rows().all()
    assert read_treatment(None, WINDOWS).source == "none"
    said = treated_view(mark_treated(META, Treatment.nothing(), WINDOWS).summary())
    assert "No store of alerts was read" in said[0].en and "ไม่ได้อ่านฐานข้อมูล" in said[0].th


def test_the_card_names_the_choice_and_the_counts_in_thai_and_english(store) -> None:
    hand_checkable_store(store)
    treatment = read_treatment(store, WINDOWS)
    words = {choice: treated_view(mark_treated(META, treatment, WINDOWS, choice=choice, down_weight=0.3).summary())
             for choice in ("keep", "down_weight", "untreated_only")}
    first = words["keep"][0]
    assert first.en.startswith("Rows whose outcome the help may have changed: 8 (61.5%); alerted 4, acted on 6, "
                               "of 13 training rows")
    assert "แถวฝึกที่ผลลัพธ์อาจเปลี่ยนไปเพราะความช่วยเหลือ: 8 (61.5%)" in first.th
    assert first.en.endswith("kept as they are") and first.th.endswith("คงไว้ตามเดิม")
    assert words["down_weight"][0].en.endswith("down-weighted to 0.3") and "ลดน้ำหนักเหลือ 0.3" in words["down_weight"][0].th
    assert words["untreated_only"][0].en.endswith("left out") and "ตัดออก" in words["untreated_only"][0].th
    assert "4 rows of wait-list schools" in words["keep"][1].en


def test_a_term_window_runs_to_the_next_terms_first_school_day() -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE calendar AS SELECT * FROM (VALUES ('2569-1', DATE '2026-05-18'), "
                "('2569-1', DATE '2026-10-02'), ('2569-2', DATE '2026-11-02'), ('2569-2', DATE '2027-03-12')) "
                "t(term, date)")
    windows = term_windows(con, ["2569-1", "2569-2"])
    assert windows["2569-1"] == TermWindow(dt.date(2026, 5, 18), dt.date(2026, 11, 2))
    assert windows["2569-2"] == TermWindow(dt.date(2026, 11, 2), None)
    days = pd.Series([dt.date(2026, 5, 17), dt.date(2026, 5, 18), dt.date(2026, 11, 1), dt.date(2026, 11, 2)])
    assert windows["2569-1"].holds(days).tolist() == [False, True, True, False]


def test_the_model_card_page_states_the_choice_and_the_counts(store, tmp_path) -> None:
    from test_plots_card import realistic_card_info

    from risk.models.card import model_card_html

    hand_checkable_store(store)
    summary = mark_treated(META, read_treatment(store, WINDOWS), WINDOWS, choice="untreated_only").summary()
    page = model_card_html(realistic_card_info(tmp_path, treated=summary))
    assert "Rows whose outcome the help may have changed: 8 (61.5%)" in page and "left out" in page
    assert "ตัดออกจากการฝึก" in page and "Rows the help may have changed" in page
    assert "not counted" in model_card_html(realistic_card_info(tmp_path))  # a card from before the count


# ---------------------------------------------------------------- training on the synthetic world (slow)
# What is tested is which rows reach the fit and with what weight, not the model's quality: few trees,
# and the baselines beside the model fitted on fewer rows.
TREES = 40


def fit(world: Path, store: Store | None, **changes):
    """A small model on ``world`` with ``store`` (no protected comparison: it refits without the store's rows)."""
    settings = small_train_settings(features__compare_protected=False, lightgbm__max_trees=TREES,
                                    evaluation__baseline_max_rows=2_000, **changes)
    return train_model(world / "validated", settings=load_settings(), train_settings=settings,
                       catalog=load_catalog(FEATURES_YAML), catalog_yaml=FEATURES_YAML.read_bytes(),
                       truth=world / "source" / "truth.parquet", id_key=WORLD_KEY, progress=False, store=store)


def model_text(result) -> str:
    booster: lgb.Booster = result.bundle.booster
    return booster.model_to_string()


@pytest.fixture(scope="module")
def helped_world(world, tmp_path_factory):
    """(world, store, samples, expected): a store in which 30 dropouts and 30 others of the first training term
    were alerted or acted on, and one school of that term was on a pilot's wait-list (its alerts hidden)."""
    settings, ts = load_settings(), small_train_settings(features__compare_protected=False)
    samples = draw_samples(world / "validated", settings=settings, ts=ts, catalog=load_catalog(FEATURES_YAML),
                           progress=False)
    term = samples.split.train[0]
    window = term_windows(outcome_connection(world / "validated", settings), [term])[term]
    meta = samples.train.meta.assign(y=samples.train.y)
    rows = meta[meta["term"] == term]
    wait_school = rows["school_id"].value_counts().index[0]
    others = rows[rows["school_id"] != wait_school].drop_duplicates("student_key").sort_values("student_key")
    chosen = pd.concat([others[others["y"] == 1].head(30), others[others["y"] == 0].head(30)])
    pairs = list(zip(chosen["student_key"].astype(int), chosen["school_id"], strict=True))
    waiting = rows[rows["school_id"] == wait_school].drop_duplicates("student_key")
    wait_pairs = list(zip(waiting["student_key"].astype(int), waiting["school_id"], strict=True))
    store = open_store(f"sqlite:///{tmp_path_factory.mktemp('helped') / 'risk.db'}")
    wait_list_plan(store, term, [], [wait_school])
    day = window.start + dt.timedelta(days=30)
    # Alerted: the first 40 chosen and every wait-list student (hidden); acted on: the chosen from 20 on,
    # and the first wait-list student.
    scoring_run(store, term, day, pairs + wait_pairs, pairs[:40] + wait_pairs)
    record_actions(store, [(k, "home_visit", day + dt.timedelta(days=7)) for k, _ in pairs[20:] + wait_pairs[:1]])
    in_term = (meta["term"] == term).to_numpy()
    keys = meta["student_key"].to_numpy()
    alerted = in_term & np.isin(keys, [k for k, _ in pairs[:40]])
    acted = in_term & np.isin(keys, [k for k, _ in pairs[20:] + wait_pairs[:1]])
    wait_rows = in_term & (meta["school_id"] == wait_school).to_numpy()
    expected = {"rows": len(meta), "alerted": int(alerted.sum()), "acted": int(acted.sum()),
                "treated": int((alerted | acted).sum()), "wait_list": int(wait_rows.sum()),
                "changed": (alerted | acted) & ~wait_rows}
    yield world, store, samples, expected
    store.close()


@pytest.mark.slow
def test_training_counts_the_helped_rows_and_keep_trains_the_model_it_trains_without_a_store(helped_world) -> None:
    world, store, _, expected = helped_world
    kept, alone = fit(world, store), fit(world, None)
    told = kept.treated
    assert {k: told[k] for k in ("rows", "alerted", "acted", "treated", "wait_list")} == {
        k: expected[k] for k in ("rows", "alerted", "acted", "treated", "wait_list")}
    assert expected["alerted"] >= 80 and expected["acted"] > 0 and told["choice"] == "keep"
    headline = kept.evaluation.headline
    assert headline["train.rows_treated"] == expected["treated"] and headline["train.rows_alerted"] == expected["alerted"]
    assert headline["train.rows_acted"] == expected["acted"]
    assert alone.treated["source"] == "none" and alone.treated["treated"] == 0
    assert model_text(kept) == model_text(alone)
    assert kept.rows == alone.rows


@pytest.mark.slow
def test_untreated_only_trains_without_exactly_the_helped_rows(helped_world) -> None:
    from risk.models.treated import find_treated, untreated_samples

    world, store, samples, expected = helped_world
    ts = small_train_settings(features__compare_protected=False, samples__treated_outcomes="untreated_only")
    treated = find_treated(samples, world / "validated", settings=load_settings(), ts=ts, store=store)
    left = untreated_samples(samples, treated).train.meta
    every = samples.train.meta
    assert len(left) == len(every) - int(expected["changed"].sum())
    gone = every[expected["changed"]]
    assert not left.merge(gone[["student_key", "term"]].drop_duplicates()).shape[0]
    # The wait-list school's rows of the pilot term are all kept, its student who was acted on too.
    wait_school = every.loc[treated.wait_list, "school_id"].iloc[0]
    pilot_term = samples.split.train[0]
    assert ((left["school_id"] == wait_school) & (left["term"] == pilot_term)).sum() == expected["wait_list"]
    assert (treated.acted & treated.wait_list).any()
    result = fit(world, store, samples__treated_outcomes="untreated_only")
    assert result.rows["train"]["rows"] == len(left) and result.treated["choice"] == "untreated_only"


@pytest.mark.slow
def test_down_weight_reaches_the_fit_only(helped_world) -> None:
    from risk.models.stages import fit_model
    from risk.models.treated import find_treated

    world, store, samples, expected = helped_world
    ts = small_train_settings(features__compare_protected=False, samples__treated_outcomes="down_weight",
                              samples__down_weight=0.3, lightgbm__max_trees=TREES)
    treated = find_treated(samples, world / "validated", settings=load_settings(), ts=ts, store=store)
    weight = treated.fit_weight()
    assert np.array_equal(weight == 0.3, expected["changed"])
    catalog = load_catalog(FEATURES_YAML)
    plain = fit_model(samples.train, catalog, ts, progress=False)
    weighted = fit_model(samples.train, catalog, ts, progress=False, outcome_weight=weight)
    assert weighted.booster.model_to_string() != plain.booster.model_to_string()
    # The early-stopping rows handed to calibration and the policy keep their sampling weights.
    assert np.array_equal(weighted.held.weight, plain.held.weight)


def test_the_help_fingerprint_changes_when_an_alert_an_action_or_a_plan_is_added(store) -> None:
    from risk.models.treated import treatment_fingerprint

    seen = [treatment_fingerprint(store)]
    assert treatment_fingerprint(store) == seen[0]  # read twice, the same
    wait_list_plan(store, TERM, [NOW_SCHOOL], [WAIT_SCHOOL])
    seen.append(treatment_fingerprint(store))
    scoring_run(store, TERM, dt.date(2026, 7, 10), list(SCHOOL_OF.items()), [(1, NOW_SCHOOL)])
    seen.append(treatment_fingerprint(store))
    record_actions(store, [(2, "home_visit", dt.date(2026, 8, 1))])
    seen.append(treatment_fingerprint(store))
    assert len(set(seen)) == 4, seen
