"""Synthetic EEF/OBEC extracts: a hidden dropout model and the observed tables it leaves.

``generate(out_dir, students=…, terms=…, seed=…, config=SynthConfig.from_yaml(…))``
writes every contract table (``out_dir/<table>/part-NNNNN.parquet|csv``), the
oracle ``truth.parquet``, the error manifest ``_injected.parquet`` and
``synth_report.json``, and returns the :class:`SynthReport`. Every number below
is a knob of ``configs/synth.yaml``.

World
-----
Schools sit in the 77 provinces weighted towards where poor students live
(northeast, then north, south with the deep south boosted, central). Each has an
area, a type (primary K1–P6, extended K1–M3, secondary M1–M6), a size class
that follows area and type, an affiliation, a hidden **school effect**
``u_s ~ N(0, 0.30²)`` and **district effect** ``v_d ~ N(0, 0.22²)`` on the
dropout log-odds, a mean poverty (region + rural + noise) and an attendance
effect. Calendars: weekdays of the term minus Thai public holidays
(``holidays.Thailand``), a 2–3 day mid-term break and school closures (~97
school days a term).

Latent model (per student, standard-normal scale)
-------------------------------------------------
* anchors: poverty ``P0 = school mean + N(0, 0.9²) (+0.4 without Thai nationality)``,
  family instability ``F0 = 0.25 P0 + N(0, 1)``, health ``H0 = −0.25 P0 + N(0, 1)``,
  ability ``A ~ N(0, 1)``;
* each term ``X_t = X0 + ρ (X_{t−1} − X0) + σ √(1 − ρ²) ε`` (ρ = 0.92, 0.88, 0.80;
  σ = 0.45, 0.50, 0.50), so the spread is stationary;
* engagement drifts around ``μ_E = −0.30 P − 0.30 F + 0.15 H + 0.35 A − 0.30·disabled
  − 0.25·over-age`` with ρ = 0.75 and stationary sd 0.8;
* shocks each term (logistic in P, F, H, semester): family migration for
  seasonal work (~2–4%), parent job loss (~3%), illness (~3%), pregnancy
  (girls M1+, ~0.5–1.5%). They move the factors (job loss: P + 0.8; migration:
  F + 0.6, E − 0.5; illness: H − 1.0; pregnancy: E − 0.8), which then drift back.

Hazard of not being enrolled anywhere next term
-----------------------------------------------
``logit h = c[grade, semester] + 0.33 P + 0.24 F − 0.12 H − 0.57 E + 0.25·over-age
+ 0.20·male·secondary + 0.15·rural + 0.30·non-Thai + 0.25·disabled + u_s + v_d
+ 1.0·migration + 0.35·job loss + 0.25·illness + 1.8·pregnancy``, plus at the
P6→M1, M3→M4 (and K3→P1) year end ``0.25 P + 0.20 log(1 + km to school)``.
The intercepts ``c`` are solved on a pilot sample at the run's own schools so
that each grade's yearly non-return matches its target. ``truth.parquet`` holds
``p_dropout = (1 − p_death) h``. Most dropout is not coming back next term (the
school records it as ``dropped_out``, leaves ``studying``, writes
``transferred`` to nowhere, or ``graduated`` after P6/M3); 5% of events (1% at
the transitions) happen mid-term, with status ``dropped_out`` at a
``status_date`` after which attendance stops.

Observed tables (generated from the latent factors with noise, never from the outcome)
------------------------------------------------------------------------------------
attendance: a two-state Markov chain per student (lag-1 correlation 0.5, so
absences come in streaks) around a daily absence probability from E, P, F, H,
distance, over-age and school, Monday/Friday excess, and shock effects that
start 3–12 school days after the shock; under 80% attendance a student gets
มส in ~90% of subjects. grades: 8–9 Thai-curriculum subjects from A and E;
household: CCT screening each June, per-capita income ~2,700 baht around the
3,000 line falling with P, proxy-means items, ``lives_with`` from F; health:
WHO 2007 medians shifted by P and H; behaviour: SDQ and flags from F, H, E;
assistance: CCT for the poor, lunch, uniforms, scholarships. Repetition follows
failed subjects; transfers and school changes at P6/M3 move students.

Calibration targets (checked by tests/test_synth.py and bench/bench_synth.py)
------------------------------------------------------------------------------
* about 4% of the poorest students do not return each year (targets per grade:
  K 1.2–2%, P1–P5 ~1%, P6 9%, M1–M2 4–4.5%, M3 15%, M4–M5 5–6%, M6 2.5%);
* nearly half of non-returners at M3 and P6 (about 27% and 20%), M3 the largest;
* mid-term dropout under 0.3% per grade and term;
* the oracle AUC of ``p_dropout`` against what happened is 0.85–0.92
  (measured 0.874–0.903 over seeds 1–6 at 3,000–50,000 students; 0.891 at 4M × 2);
* attendance about 93–94% on average, ~6% of students under the 80% line.

Injected errors (``mess``) make ~0.5% of each table's rows faulty, one fault per
row, every one listed in ``_injected.parquet``; all other rows obey the contract.

Closed loop
-----------
``continue_export(source, out, help_plan=…, effects=…, key=…, seed=…, config=…)`` rewrites an
export one term further, the help schools gave in its last term applied to that term's
outcomes with a planted relative effect per action (:mod:`risk.data.synth.continue_term`);
:mod:`risk.data.synth.teachers` decides that help from the engine's alerts, with selection.

Field style
-----------
``risk.data.synth.field.write_field_style(clean_dir, out_dir, profile=…)`` rewrites
an export the way schools send it (Excel with codes in number cells, cp874 CSV with
Thai headers, Buddhist-Era day-first dates, a BOM, Thai digits); with
``configs/profiles/field.yaml`` it validates to the same tables and counts.
"""

from risk.data.synth.config import SynthConfig, SynthConfigError
from risk.data.synth.continue_term import (
           ContinueReport,
           continue_export,
           parse_effects,
           source_report,
)
from risk.data.synth.engine import generate
from risk.data.synth.report import SynthReport
from risk.data.synth.teachers import TeacherModel, act_on_alerts, actions_file, term_alerts

__all__ = ["ContinueReport", "SynthConfig", "SynthConfigError", "SynthReport", "TeacherModel", "act_on_alerts",
           "actions_file", "continue_export", "generate", "parse_effects", "source_report", "term_alerts"]
