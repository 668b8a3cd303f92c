"""Impact: did the alerts and the help keep children in school? (layer 6, beside risk.scoring)

* :mod:`risk.impact.design` — the randomised wait-list plan (schools to ``alert_now``
  or ``wait_list``, stratified and seeded), the school-level ICC from past terms,
  and the minimum detectable effect and power of a plan.
* :mod:`risk.impact.estimate` — the pilot's intention-to-treat effect among flagged
  students (clustered CI and randomisation inference) and the effect in schools
  that acted (instrumental variables).
* :mod:`risk.impact.actions` — per action type, observational: the naive
  acted-vs-not difference beside a doubly robust estimate, labelled weaker evidence.
* :mod:`risk.impact.effects` — the result type they share, and clustered OLS.
* :mod:`risk.impact.randomisation` — re-drawing the assignment for p-values and CIs.
* :mod:`risk.impact.simulate` — simulated pilots with a planted, known effect.

Pure functions on pandas frames; nothing here reads or writes the store.
"""
