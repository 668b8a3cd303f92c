"""Service commands: serve (the API and teacher page) and keys."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from risk.cli.common import (
    REPO_CONFIGS,
    DemoOption,
    StoreOption,
    app,
    console,
    errors,
    friendly,
    open_data_store,
    pseudonym_key,
)

ServeConfigOption = Annotated[Path, typer.Option("--config", help="Service settings (YAML).")]


@app.command()
@friendly
def serve(
    config: ServeConfigOption = REPO_CONFIGS / "serve.yaml",
    data: Annotated[Path | None, typer.Option(help="Validated folder (default: from the settings).")] = None,
    store: StoreOption = None,
    tracking_dir: Annotated[Path | None, typer.Option(
        help="Folder of the local MLflow store and model cache; MLFLOW_TRACKING_URI wins.")] = None,
    host: Annotated[str | None, typer.Option(help="Address to listen on (default: from the settings).")] = None,
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="Port (default: from the settings).")] = None,
    workers: Annotated[int | None, typer.Option(
        min=1, max=32, help="Worker processes (default: from the settings; about one per core).")] = None,
    demo: DemoOption = False,
) -> None:
    """Run the API and the teacher page (uvicorn) on the champion model, with keys, audit and metrics."""
    import gc
    import os
    import tempfile

    import uvicorn

    from risk.logs import configure_logging
    from risk.serve.app import WORKER_SETTINGS, create_app
    from risk.serve.settings import load_serve_settings
    from risk.serve.workers import NoDelayH11Protocol

    overrides = {k: v for k, v in {"data": data, "store_url": store, "tracking_dir": tracking_dir, "host": host,
                                   "port": port, "workers": workers}.items() if v is not None}
    if demo:
        overrides["demo_key"] = True
    settings = load_serve_settings(config, **overrides)
    # A service's operational lines (start, model swaps, access log) are INFO: its own level
    # (configs/serve.yaml, log_level) applies, not the batch commands' --log-level default.
    configure_logging(settings.log_level)
    # Built here first even for several workers: a fault in the settings, the data or the store is
    # one clear sentence now, not a crash in every worker; and the model is in the local cache
    # before the workers start, so they load it from there.
    application = create_app(settings, id_key=pseudonym_key(settings.demo_key))
    if application.state.services.holder.current is None:
        errors.print("[bold yellow]WARNING: no model yet (registry and cache empty): /readyz says not ready "
                     "until a champion is promoted.[/]")
    console.print(f"serving on http://{settings.host}:{settings.port} with {settings.workers} worker process"
                  f"{'es' if settings.workers > 1 else ''} (docs at /docs, teacher page at /teacher)", highlight=False)
    # uvicorn's access log stays off (its request line holds the raw path, which may hold a student
    # ID); the app writes its own, by route template (risk.serve.metrics).
    if settings.workers == 1:
        uvicorn.run(application, host=settings.host, port=settings.port, access_log=False, log_level="warning",
                    http=NoDelayH11Protocol)
        return
    application.state.services.store.close()
    del application
    gc.collect()
    # Several processes, one service: they share rate-limit buckets and metrics through a folder of
    # this run, and each builds its app from the settings resolved here.
    with tempfile.TemporaryDirectory(prefix="risk-serve-") as shared:
        metrics_dir = Path(shared) / "metrics"
        metrics_dir.mkdir()
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        os.environ[WORKER_SETTINGS] = settings.model_copy(update={"shared_dir": Path(shared)}).model_dump_json()
        uvicorn.run("risk.serve.app:worker_app", factory=True, workers=settings.workers, host=settings.host,
                    port=settings.port, access_log=False, log_level="warning", http=NoDelayH11Protocol,
                    # A worker loading its reference tables and model answers the supervisor's
                    # ping late; the 5 s default had it killed and restarted, over and over.
                    timeout_worker_healthcheck=120)


keys_app = typer.Typer(help="API keys of the service: create (token shown once), list, revoke.",
                       no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("create")
@friendly
def keys_create(
    role: Annotated[str, typer.Option(help="upstream, teacher, analyst or admin.")],
    school: Annotated[str | None, typer.Option(help="The teacher's school id (teacher keys only).")] = None,
    label: Annotated[str, typer.Option(help="What the key is for (a system or a role, not a child).")] = "",
    data: Annotated[Path, typer.Option(
        help="Validated folder (locates the default store; its schools table lists the schools a teacher key may "
             "name).")] = Path("data/validated"),
    store: StoreOption = None,
) -> None:
    """Create a key and print its token once: it is stored only as a hash and cannot be shown again.

    A teacher key's school must be in the validated schools table or have stored scores.
    """
    from risk.store import create_key

    new = create_key(open_data_store(store, data), role, school_id=school, label=label,
                     known_schools=_validated_schools(data) if school else ())
    console.print(f"key {new.record.key_id} ({new.record.role}"
                  f"{', school ' + new.record.school_id if new.record.school_id else ''}) created; its token "
                  "(shown once, keep it secret):", highlight=False)
    print(new.token)


def _validated_schools(data: Path) -> set[str]:
    """Every school id of the validated schools table (every version of it); empty when there is none."""
    import pyarrow.parquet as pq

    files = sorted((data / "schools").glob("*.parquet"))
    return {str(s) for f in files for s in pq.read_table(f, columns=["school_id"]).column("school_id").to_pylist()}


@keys_app.command("list")
@friendly
def keys_list(
    data: Annotated[Path, typer.Option(help="Validated folder (locates the default store).")] = Path("data/validated"),
    store: StoreOption = None,
) -> None:
    """List keys: id, role, school, label, created, revoked."""
    from risk.store import list_keys

    for k in list_keys(open_data_store(store, data)):
        state = f"revoked {k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "active"
        console.print(f"{k.key_id}  {k.role:<8} {k.school_id or '-':<10}  {k.created_at:%Y-%m-%d %H:%M}  {state}  "
                      f"{k.label}", highlight=False)


@keys_app.command("revoke")
@friendly
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key's id (from `risk keys list`).")],
    data: Annotated[Path, typer.Option(help="Validated folder (locates the default store).")] = Path("data/validated"),
    store: StoreOption = None,
) -> None:
    """Revoke a key: the service refuses it within its key cache time (configs/serve.yaml)."""
    from risk.store import revoke_key

    record = revoke_key(open_data_store(store, data), key_id)
    console.print(f"key {record.key_id} revoked at {record.revoked_at:%Y-%m-%d %H:%M:%S} UTC", highlight=False)
