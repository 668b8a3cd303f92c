"""Online serving of one student (or a batch of payloads): payload checks, the fast row-wise features and the online builder.

Batch feature definitions live in :mod:`risk.features` (DuckDB SQL, one module per
domain); this package holds the service's way to the same numbers for records it
receives: :mod:`risk.online.payload` (the full contract checks, as validation
would quarantine), :mod:`risk.online.payload_fast` (the clean-payload pass),
:mod:`risk.online.rowwise` (the numpy twin of every feature kind) and
:mod:`risk.online.builder` (:class:`~risk.online.builder.OnlineFeatureBuilder`,
which picks the fast way and falls back to SQL where the design expects).
"""
