"""risk.serve: the FastAPI service for upstream systems, analysts and teachers.

:func:`risk.serve.app.create_app` builds the application from
:class:`risk.serve.settings.ServeSettings` (``configs/serve.yaml``); ``risk serve``
runs it with uvicorn. Routes live in :mod:`risk.serve.routes`, one module per resource.
"""
