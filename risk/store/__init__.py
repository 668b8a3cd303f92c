"""risk.store: the one database layer shared by the batch scorer and the service.

SQLAlchemy 2 models and Alembic migrations; SQLite by default, PostgreSQL by URL.
Open it with :func:`open_store` (which migrates to the newest schema), then:

- runs: :func:`start_run`, :func:`find_unfinished_run`, :func:`done_buckets`,
  :func:`finish_run`, :func:`fail_run`;
- scores: :func:`write_bucket_scores`, :func:`latest_scores`,
  :func:`previous_scores`, :func:`student_history`;
- alerts (one per student, term and date): :func:`write_alerts`, :func:`open_alerts`,
  :func:`acknowledge` (in words, action codes or both), :func:`alert_counts`;
- actions (what schools did, as action codes): :func:`import_actions`, :func:`stored_actions`;
- summaries: :func:`write_summaries`, :func:`summaries`;
- pilots (randomised wait-list, issue 30): :func:`write_pilot`, :func:`pilot_plan`, :func:`pilot_arms`,
  :func:`set_pilot_run`, :func:`wait_list_term`, :func:`flagged_students`; wait-list schools' alerts
  are left out of :func:`open_alerts` while their pilot term runs;
- impact (``risk impact``): :func:`write_impact_estimates`, :func:`impact_estimates`, :func:`term_flags`,
  :func:`alerted_students`, :func:`last_scoring_date`;
- service access: :func:`create_key`, :func:`find_key`, :func:`list_keys`,
  :func:`revoke_key`; audit: :func:`write_audit`, :func:`audit_entries`.

This package imports nothing above ``risk.errors``: the scorer and the service
build on it, never the other way round.
"""

from __future__ import annotations

from risk.store.actions import ImportedActions, check_codes, import_actions, stored_actions
from risk.store.alerts import (
    ALERT_OUTCOMES,
    AcknowledgementDateError,
    acknowledge,
    alert_counts,
    open_alerts,
    write_alerts,
)
from risk.store.audit import AuditRecord, audit_entries, write_audit
from risk.store.db import Store, StoreError, default_store_url, open_store, safe_url
from risk.store.impact import (
    ESTIMATE_COLUMNS,
    alerted_students,
    impact_estimates,
    last_scoring_date,
    term_flags,
    write_impact_estimates,
)
from risk.store.keys import KeyRecord, NewKey, create_key, find_key, list_keys, revoke_key
from risk.store.pilot import (
    PilotExistsError,
    PlanRecord,
    flagged_students,
    pilot_arms,
    pilot_plan,
    set_pilot_run,
    wait_list_term,
    write_pilot,
)
from risk.store.runs import (
    done_buckets,
    fail_run,
    find_unfinished_run,
    finish_run,
    finished_run,
    latest_finished_run,
    previous_finished_run,
    run_record,
    start_run,
)
from risk.store.scores import (
    SCORE_COLUMNS,
    latest_scores,
    previous_scores,
    student_history,
    write_bucket_scores,
)
from risk.store.summaries import SUMMARY_COLUMNS, summaries, write_summaries

__all__ = [
    "ALERT_OUTCOMES",
    "ESTIMATE_COLUMNS",
    "AcknowledgementDateError",
    "AuditRecord",
    "ImportedActions",
    "KeyRecord",
    "NewKey",
    "PilotExistsError",
    "PlanRecord",
    "audit_entries",
    "create_key",
    "find_key",
    "list_keys",
    "revoke_key",
    "write_audit",
    "SCORE_COLUMNS",
    "SUMMARY_COLUMNS",
    "Store",
    "StoreError",
    "acknowledge",
    "alert_counts",
    "alerted_students",
    "check_codes",
    "default_store_url",
    "done_buckets",
    "fail_run",
    "find_unfinished_run",
    "flagged_students",
    "finish_run",
    "finished_run",
    "impact_estimates",
    "import_actions",
    "last_scoring_date",
    "latest_finished_run",
    "latest_scores",
    "open_alerts",
    "open_store",
    "pilot_arms",
    "pilot_plan",
    "previous_finished_run",
    "previous_scores",
    "run_record",
    "safe_url",
    "set_pilot_run",
    "start_run",
    "stored_actions",
    "student_history",
    "summaries",
    "term_flags",
    "wait_list_term",
    "write_alerts",
    "write_bucket_scores",
    "write_impact_estimates",
    "write_pilot",
    "write_summaries",
]
