"""``jiesu`` commands around the service: serve, keys, units, scores, corrections, supervise.

They read the same settings as the service (``JIESU_DATABASE_URL`` …), so they act on the same database.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Optional

import typer

from serving.settings import Settings

keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
units_app = typer.Typer(help="The unit registry.", no_args_is_help=True)
corrections_app = typer.Typer(help="Reviewer corrections as training data.", no_args_is_help=True)
analytics_app = typer.Typer(help="Analysis of the tickets in the database.", no_args_is_help=True)
outbox_app = typer.Typer(help="Messages to citizens (点对点反馈): deliveries and their state.", no_args_is_help=True)
DbOpt = Annotated[Optional[str], typer.Option("--database-url", help="Overrides JIESU_DATABASE_URL.")]


def _settings(database_url: str | None) -> Settings:
    settings = Settings()
    return settings.model_copy(update={"database_url": database_url}) if database_url else settings


def _session(settings: Settings):
    from serving.store.db import make_engine, migrate, session_factory

    engine = make_engine(settings.database_url)
    migrate(engine)
    return session_factory(engine)()


def _synced_session(settings: Settings):
    from serving.services.units import sync_units
    from taxonomy import load_taxonomy

    taxonomy = load_taxonomy(settings.profile, data_dir=settings.data_dir)
    session = _session(settings)
    sync_units(session, taxonomy)
    return session, taxonomy


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    model: Annotated[Optional[Path], typer.Option("--model", help="Overrides JIESU_MODEL_PATH.")] = None,
    workers: Annotated[Optional[int], typer.Option(
        "--workers", min=1, help="Worker processes. Default: one per core on PostgreSQL; SQLite is one process.")] = None,
    database_url: DbOpt = None,
) -> None:
    """Run the HTTP service (OpenAPI docs at /docs)."""
    import os

    import uvicorn

    from serving.api.app import create_app

    settings = _settings(database_url)
    if model is not None:
        settings = settings.model_copy(update={"model_path": model})
    sqlite = settings.database_url.startswith("sqlite")
    if workers is None:
        workers = 1 if sqlite else (os.cpu_count() or 1)
    if sqlite and workers > 1:
        raise ValueError("--workers: SQLite serves from one process; use PostgreSQL (JIESU_DATABASE_URL) for several")
    if workers > 1:
        # each worker builds its app from the environment; background work runs in one of them (store.locks)
        os.environ["JIESU_DATABASE_URL"] = settings.database_url
        if settings.model_path is not None:
            os.environ["JIESU_MODEL_PATH"] = str(settings.model_path)
        typer.echo(f"jiesu: database {settings.database_url}; {workers} workers", err=True)
        uvicorn.run("serving.api.app:app_from_env", factory=True, workers=workers, host=host, port=port,
                    log_level="info")
        return
    app = create_app(settings)
    state = app.state.jiesu
    typer.echo(f"jiesu: database {settings.database_url}; model "
               f"{state.model_path if state.predictor else 'NOT LOADED: ' + str(state.model_error)}", err=True)
    uvicorn.run(app, host=host, port=port, log_level="info")


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option("--role", help="intake, unit, reviewer, callback, analyst or admin.")],
    unit: Annotated[Optional[str], typer.Option("--unit", help="The unit a unit key acts for.")] = None,
    label: Annotated[Optional[str], typer.Option("--label", help="Who holds the key (shown by keys list).")] = None,
    expires: Annotated[Optional[str], typer.Option("--expires", help="Expiry: a date (end of that day in the "
                                                   "profile's time zone) or a time with its zone.")] = None,
    database_url: DbOpt = None,
) -> None:
    """Create an API key and print it (only its hash is stored)."""
    from serving.services.keys import create_key

    session, taxonomy = _synced_session(_settings(database_url))
    with session:
        typer.echo(create_key(session, role, unit, label=label, expires_at=_expiry(expires, taxonomy.timezone)))


def _expiry(value: str | None, tz) -> datetime | None:
    from datetime import date, time, timedelta

    if value is None:
        return None
    try:
        if len(value) == 10:
            return datetime.combine(date.fromisoformat(value) + timedelta(days=1), time(), tz)
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"--expires: {value!r} is not a date (2027-06-30) or a time (2027-06-30T18:00:00+08:00)") \
            from None
    if moment.tzinfo is None:
        raise ValueError("--expires: give a timezone, e.g. 2027-06-30T18:00:00+08:00")
    return moment


@keys_app.command("list")
def keys_list(
    all_: Annotated[bool, typer.Option("--all", help="Include revoked keys.")] = False,
    database_url: DbOpt = None,
) -> None:
    """The keys by number: role, unit, label, created, expires, state (no secret is shown or stored)."""
    from serving.services.keys import key_record, list_keys

    with _session(_settings(database_url)) as session:
        for row in list_keys(session, include_revoked=all_):
            r = key_record(row)
            typer.echo("\t".join(str(x) if x is not None else "-" for x in (
                r["id"], r["role"], r["unit_id"], r["label"], r["created_at"].isoformat(timespec="seconds"),
                r["expires_at"].isoformat(timespec="seconds") if r["expires_at"] else None, r["state"])))


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[int, typer.Argument(help="The key's number (keys list).")],
                database_url: DbOpt = None) -> None:
    """Revoke a key: it is refused from the next request on."""
    from serving.services.keys import revoke_key

    with _session(_settings(database_url)) as session:
        try:
            row = revoke_key(session, key_id)
        except LookupError as exc:
            raise ValueError(str(exc)) from None
        typer.echo(f"key {row.id} ({row.role}) revoked at {row.revoked_at.isoformat(timespec='seconds')}")


@units_app.command("import")
def units_import(file: Annotated[Path, typer.Argument(help="Official street list (code,name,areaCode).")],
                 database_url: DbOpt = None) -> None:
    """Import an official street list into the registry."""
    from serving.services.units import import_units

    session, taxonomy = _synced_session(_settings(database_url))
    with session:
        counts = import_units(session, file, taxonomy)
    typer.echo(f"imported {file}: {counts['added']} added, {counts['renamed']} renamed, "
               f"{counts['unchanged']} unchanged")


@units_app.command("merge")
def units_merge(unit_id: Annotated[str, typer.Argument(help="The unit that ceases (e.g. street:110105001).")],
                into: Annotated[str, typer.Argument(help="The unit that takes over.")],
                database_url: DbOpt = None) -> None:
    """Merge a unit into another: it is deactivated, its name resolves to the successor."""
    from serving.services.units import merge_unit

    session, _ = _synced_session(_settings(database_url))
    with session:
        try:
            survivor = merge_unit(session, unit_id, into)
        except LookupError:
            raise ValueError(f"unit {unit_id} not found") from None
    typer.echo(f"merged {unit_id} into {survivor.id} ({survivor.name})")


def scores(
    month: Annotated[str, typer.Option("--month", help="YYYY-MM")],
    level: Annotated[str, typer.Option("--level", help="street, district, department, company or industry "
                                                        "(部门+行业: each industry with its members)")] = "street",
    database_url: DbOpt = None,
) -> None:
    """Print the month's 三率 scores and ranks as JSON lines."""
    from serving.services.scores import monthly_scores

    session, taxonomy = _synced_session(_settings(database_url))
    with session:
        for score in monthly_scores(session, taxonomy, month, level):
            typer.echo(json.dumps(_score_row(score), ensure_ascii=False))


def _score_row(score) -> dict:
    row = {k: v for k, v in score.__dict__.items() if k not in ("ticket_ids", "members")}
    if score.members:
        row["members"] = [_score_row(m) for m in score.members]
    return row


def supervise(database_url: DbOpt = None) -> None:
    """督办: flag every overdue open ticket with a supervised event (run it from a scheduler)."""
    from serving.services.tickets import TicketService

    session, taxonomy = _synced_session(_settings(database_url))
    with session:
        flagged = TicketService(session, taxonomy, None, None).supervise()
    typer.echo(f"flagged {len(flagged)} overdue tickets")


@corrections_app.command("export")
def corrections_export(out: Annotated[Path, typer.Option("--out", help="JSONL file to write.")],
                       database_url: DbOpt = None) -> None:
    """Write reviewer corrections in the training data format (title, text, category, urgency, …)."""
    from sqlalchemy import select

    from serving.domain.privacy import mask
    from serving.store.models import CorrectionRow

    session, _ = _synced_session(_settings(database_url))
    count = 0
    with session, out.open("w", encoding="utf-8") as fh:
        for row in session.execute(select(CorrectionRow).order_by(CorrectionRow.id)).scalars():
            fh.write(json.dumps({
                "id": f"correction-{row.id}", "title": mask(row.title), "text": mask(row.text), "category": row.category,
                "urgency": row.urgency, "appeal_type": row.appeal_type, "unit": row.unit_id or "",
                "department": row.department or "", "company": row.company or "",
                "district": row.district_id or "", "created_at": row.created_at.isoformat()},
                ensure_ascii=False) + "\n")
            count += 1
    typer.echo(f"wrote {count} corrections to {out}")


@analytics_app.command("volume")
def analytics_volume(
    start: Annotated[str, typer.Option("--from", help="Start date or time (hotline time when no zone), inclusive.")],
    end: Annotated[str, typer.Option("--to", help="End date or time, exclusive.")],
    by: Annotated[str, typer.Option(help="Comma-separated: category,district,street,channel,urgency.")] = "",
    interval: Annotated[str, typer.Option(help="day, week, month or none.")] = "day",
    level: Annotated[int, typer.Option(help="Category level for by=category.")] = 1,
    format: Annotated[str, typer.Option(help="json or csv.")] = "json",
    database_url: DbOpt = None,
) -> None:
    """Volume and the 三率 for any slice (the same numbers as GET /v1/analytics/volume)."""
    from serving.analytics.volume import VolumeQuery, columns_for, to_csv, volume

    if format not in ("json", "csv"):
        raise ValueError("--format: json or csv")
    session, taxonomy = _synced_session(_settings(database_url))

    def moment(text: str, option: str) -> datetime:
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{option}: {text!r} is not a date or ISO time") from None
        return value if value.tzinfo else value.replace(tzinfo=taxonomy.timezone)

    query = VolumeQuery(start=moment(start, "--from"), end=moment(end, "--to"),
                        by=tuple(d.strip() for d in by.split(",") if d.strip()),
                        interval=None if interval == "none" else interval, level=level)
    with session:
        rows = volume(session, query, taxonomy)
    if format == "csv":
        typer.echo(to_csv(rows, columns_for(query)), nl=False)
    else:
        for row in rows:
            typer.echo(json.dumps(row, ensure_ascii=False))


@analytics_app.command("hotspots")
def analytics_hotspots(
    data: Annotated[Path, typer.Option("--data", help="Offline appeals: CSV/JSONL with id,title,text,created_at[,likes].")],
    top: Annotated[int, typer.Option(help="How many hotspots to print.")] = 15,
    min_size: Annotated[int, typer.Option(help="Smallest cluster that counts as a hotspot.")] = 3,
    window_days: Annotated[int, typer.Option(help="Days an open hotspot waits for its next appeal.")] = 30,
    out: Annotated[Optional[Path], typer.Option("--out", help="Also write the hotspots here as JSON.")] = None,
) -> None:
    """Find hotspots in an offline file of appeals (one JSON object per hotspot on stdout)."""
    import time

    from serving.analytics.hotspots import find_hotspots
    from serving.analytics.sources import appeals_from_file

    appeals, skipped = appeals_from_file(data)
    started = time.perf_counter()
    hotspots = find_hotspots(appeals, window_days=window_days, min_size=min_size, top=top)
    seconds = time.perf_counter() - started
    for hotspot in hotspots:
        typer.echo(json.dumps(hotspot.to_dict(), ensure_ascii=False))
    typer.echo(f"{len(appeals)} appeals ({skipped} without a valid time were left out), {len(hotspots)} hotspots "
               f"in {seconds:.1f}s", err=True)
    if out:
        out.write_text(json.dumps([h.to_dict() for h in hotspots], ensure_ascii=False, indent=1), encoding="utf-8")


def topics(
    month: Annotated[str, typer.Option("--month", help="YYYY-MM")],
    level: Annotated[int, typer.Option(help="Category level of the candidates.")] = 1,
    limit: Annotated[int, typer.Option(help="How many candidates.")] = 10,
    database_url: DbOpt = None,
) -> None:
    """Rank the month's candidate 每月一题 (JSON lines, best first, with the evidence)."""
    import re

    from serving.analytics.topics import candidates

    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", month):
        raise ValueError(f"--month: {month!r} is not YYYY-MM")
    session, taxonomy = _synced_session(_settings(database_url))
    with session:
        for item in candidates(session, taxonomy, month, level, limit):
            typer.echo(json.dumps(item, ensure_ascii=False))


def report(
    kind: Annotated[str, typer.Option("--kind", help="daily, weekly or monthly")],
    day: Annotated[str, typer.Option("--date", help="A day in the period, YYYY-MM-DD")],
    out: Annotated[Optional[Path], typer.Option("--out", help="HTML file to write (default: stdout)")] = None,
    database_url: DbOpt = None,
) -> None:
    """Write the 日通报 / 周汇总 / 月分析 as a standalone, printable HTML page."""
    from datetime import date

    from serving.services.reports import KINDS, build_report

    if kind not in KINDS:
        raise ValueError(f"--kind: must be one of {', '.join(KINDS)}")
    try:
        when = date.fromisoformat(day)
    except ValueError:
        raise ValueError(f"--date: {day!r} is not YYYY-MM-DD") from None
    if not 1900 <= when.year <= 2999:
        raise ValueError(f"--date: {day} is out of range (years 1900–2999)")
    session, taxonomy = _synced_session(_settings(database_url))
    with session:
        html = build_report(session, taxonomy, kind, when)
    if out:
        out.write_text(html, encoding="utf-8")
        typer.echo(f"wrote {out}", err=True)
    else:
        typer.echo(html)


@outbox_app.command("deliver")
def outbox_deliver(database_url: DbOpt = None) -> None:
    """Send the due messages now through the configured sender (JIESU_OUTBOX_SENDER)."""
    from serving.services.outbox import deliver_due, load_sender

    settings = _settings(database_url)
    sender = load_sender(settings.outbox_sender, settings.outbox_log)
    with _session(settings) as session:
        counts = deliver_due(session, sender)
    typer.echo(f"sent {counts['sent']}, retried {counts['retried']}, failed {counts['failed']}")


@outbox_app.command("list")
def outbox_list(status: Annotated[Optional[str], typer.Option("--status", help="queued, sent or failed")] = None,
                ticket: Annotated[Optional[int], typer.Option("--ticket", help="One ticket's messages")] = None,
                database_url: DbOpt = None) -> None:
    """The latest messages with their delivery state (the recipient masked)."""
    from serving.domain.privacy import mask_phone
    from serving.services.outbox import list_messages

    if status is not None and status not in ("queued", "sent", "failed"):
        raise ValueError(f"--status: {status!r} is not queued, sent or failed")
    with _session(_settings(database_url)) as session:
        for m in list_messages(session, status, ticket):
            typer.echo("\t".join(str(x) for x in (m.id, m.ticket_id, m.kind, mask_phone(m.recipient), m.status, m.attempts,
                                                   m.last_error or "-")))


def register(app: typer.Typer, guard) -> None:
    app.command()(guard(serve))
    app.command()(guard(scores))
    app.command()(guard(supervise))
    app.command()(guard(topics))
    app.command()(guard(report))
    for sub, name in ((keys_app, "keys"), (units_app, "units"), (corrections_app, "corrections"),
                      (analytics_app, "analytics"), (outbox_app, "outbox")):
        for command in sub.registered_commands:
            command.callback = guard(command.callback)
        app.add_typer(sub, name=name)
