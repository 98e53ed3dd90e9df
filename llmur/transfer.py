"""Copy every llmur table from the current database into another one: `manage.py transfer_database --to URL`.

The usual move is from the embedded SQLite file to PostgreSQL or MySQL once a deployment grows.
The target is added as a second Django database alias at run time, migrated to the same schema,
then filled table by table in primary-key batches inside one transaction (all or nothing),
keeping every primary key so references stay valid. PostgreSQL sequences are reset afterwards so
new rows do not collide with copied ones. Finally row counts of every table and the spend totals
are compared between the two databases.

Rows are moved as model instances, so each backend's own conversions apply (JSON, Decimal,
datetimes), but inserted "raw", the way loaddata does: auto_now / auto_now_add fields keep the
source's timestamps instead of being stamped with the time of the copy.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import IO, Iterable

from django.apps import apps
from django.conf import settings
from django.core.management import call_command
from django.core.management.color import no_style
from django.db import connections, models, transaction
from django.db.migrations.executor import MigrationExecutor
from tqdm import tqdm

from billing.models import DailySpend, SpendLog
from llmur.config import ConfigError, ResolvedDatabase, parse_database_url

TARGET_ALIAS = "transfer_target"
SOURCE_ALIAS = "default"

# Tables that `migrate` itself fills (content types, permissions, the seeded price list): rows in
# them do not make a freshly migrated target "non-empty". They are replaced by the source's rows.
MIGRATION_SEEDED = {"contenttypes.contenttype", "auth.permission", "billing.modelprice"}


class TransferError(Exception):
    """A transfer that cannot start or did not verify; the text is the one line the user reads."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class TableResult:
    label: str
    table: str
    source_rows: int
    target_rows: int


@dataclass
class TransferReport:
    """What was copied and what the verification compared."""

    target: str
    tables: list[TableResult] = field(default_factory=list)
    totals: dict[str, tuple[Decimal | int, Decimal | int]] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return sum(t.target_rows for t in self.tables)


def describe(db: ResolvedDatabase) -> str:
    """How a database is named in messages: engine and address, never credentials."""
    return f"sqlite {db.name}" if db.engine == "sqlite" else f"{db.engine} {db.host}:{db.port}/{db.name}"


def transferred_models() -> list[type[models.Model]]:
    """Every table Django manages here (llmur's apps, auth, admin log, sessions, m2m tables), parents first."""
    candidates = [m for m in apps.get_models(include_auto_created=True) if m._meta.managed and not m._meta.proxy]
    by_label = {m._meta.label_lower: m for m in candidates}
    ordered: list[type[models.Model]] = []
    visiting: set[str] = set()

    def visit(model: type[models.Model]) -> None:
        label = model._meta.label_lower
        if model in ordered or label in visiting:
            return
        visiting.add(label)
        for f in model._meta.concrete_fields:
            related = f.related_model if f.is_relation else None
            if related is not None and related is not model and related._meta.label_lower in by_label:
                visit(by_label[related._meta.label_lower])
        visiting.discard(label)
        ordered.append(model)

    for model in sorted(candidates, key=lambda m: m._meta.label_lower):
        visit(model)
    return ordered


def _target_entry(target: ResolvedDatabase) -> dict:
    """The Django DATABASES entry for the target, built the same way settings.py builds the default."""
    from llmur.settings import _database

    entry = _database(target)
    # A one-off bulk copy needs one connection, not a pool with its background threads.
    entry["OPTIONS"] = {k: v for k, v in entry["OPTIONS"].items() if k != "pool"}
    return entry


def _same_database(a: ResolvedDatabase, b: ResolvedDatabase) -> bool:
    if a.engine != b.engine:
        return False
    if a.engine == "sqlite":
        return Path(a.name).resolve() == Path(b.name).resolve()
    return (a.host, a.port, a.name) == (b.host, b.port, b.name)


def _reason(exc: BaseException, *secrets: str) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text[:300]


def _check_source_migrated() -> None:
    connection = connections[SOURCE_ALIAS]
    executor = MigrationExecutor(connection)
    if executor.migration_plan(executor.loader.graph.leaf_nodes()):
        raise TransferError("llmur: the current database has unapplied migrations: "
                            "run `python manage.py migrate` first, then transfer", exit_code=2)


def _rows_holding_data(model_list: Iterable[type[models.Model]]) -> dict[str, int]:
    """Tables on the target that already hold rows a user put there (not migrate's own seeds)."""
    connection = connections[TARGET_ALIAS]
    existing = set(connection.introspection.table_names())
    held: dict[str, int] = {}
    for model in model_list:
        if model._meta.label_lower in MIGRATION_SEEDED or model._meta.db_table not in existing:
            continue
        count = model._base_manager.using(TARGET_ALIAS).count()
        if count:
            held[model._meta.db_table] = count
    return held


def _batches(model: type[models.Model], batch_size: int) -> Iterable[list[models.Model]]:
    """The source table in primary-key order, one batch at a time (keyset pagination: no OFFSET scans)."""
    manager = model._base_manager.using(SOURCE_ALIAS)
    pk_name = model._meta.pk.attname
    last = None
    while True:
        queryset = manager.order_by(pk_name)
        if last is not None:
            queryset = queryset.filter(**{f"{pk_name}__gt": last})
        batch = list(queryset[:batch_size])
        if not batch:
            return
        yield batch
        last = getattr(batch[-1], pk_name)


def _copy_table(model: type[models.Model], batch_size: int, progress: IO[str] | None) -> int:
    target = connections[TARGET_ALIAS]
    fields = list(model._meta.concrete_fields)
    total = model._base_manager.using(SOURCE_ALIAS).count()
    # SQLite caps the number of bound parameters per statement; the backend knows its own limit.
    per_insert = max(1, min(batch_size, target.ops.bulk_batch_size(fields, [None] * batch_size) or batch_size))
    copied = 0
    with tqdm(total=total, desc=model._meta.db_table, unit="rows", file=progress or sys.stderr,
              disable=progress is None, leave=True, dynamic_ncols=True) as bar:
        for batch in _batches(model, batch_size):
            for start in range(0, len(batch), per_insert):
                chunk = batch[start:start + per_insert]
                # raw=True: insert the values as they are (no auto_now stamping), like loaddata.
                model._base_manager.using(TARGET_ALIAS)._insert(chunk, fields=fields, using=TARGET_ALIAS, raw=True)
            copied += len(batch)
            bar.update(len(batch))
    return copied


def _totals(alias: str) -> dict[str, Decimal | int]:
    """Money and token totals, summed exactly in Python from each row as the database returns it."""
    spend_cost, spend_tokens, daily_cost = Decimal(0), 0, Decimal(0)
    for cost, tokens in SpendLog.objects.using(alias).values_list("cost", "total_tokens").iterator(chunk_size=5000):
        spend_cost += cost
        spend_tokens += tokens
    for (cost,) in DailySpend.objects.using(alias).values_list("cost").iterator(chunk_size=5000):
        daily_cost += cost
    return {"SpendLog cost": spend_cost, "SpendLog total_tokens": spend_tokens, "DailySpend cost": daily_cost}


def _verify(model_list: list[type[models.Model]], report: TransferReport) -> None:
    mismatched = []
    for model in model_list:
        source_rows = model._base_manager.using(SOURCE_ALIAS).count()
        target_rows = model._base_manager.using(TARGET_ALIAS).count()
        report.tables.append(TableResult(model._meta.label, model._meta.db_table, source_rows, target_rows))
        if source_rows != target_rows:
            mismatched.append(f"{model._meta.db_table} {source_rows} → {target_rows}")
    source_totals, target_totals = _totals(SOURCE_ALIAS), _totals(TARGET_ALIAS)
    for name, value in source_totals.items():
        report.totals[name] = (value, target_totals[name])
        if value != target_totals[name]:
            mismatched.append(f"{name} {value} → {target_totals[name]}")
    if mismatched:
        raise TransferError("llmur: verification failed, the target differs from the source "
                            f"({'; '.join(mismatched)}); did something write to the source during the "
                            "transfer? Stop llmur's web, worker and beat processes and run it again with --force")


def transfer_database(*, to: str, force: bool = False, batch_size: int = 1000,
                      progress: IO[str] | None = None) -> TransferReport:
    """Copy every table of the current database into the database at `to`, then verify it.

    Raises TransferError (exit code 2 when nothing was done, 1 when verification failed).
    progress: where the per-table progress bars go, or None for none.
    """
    if batch_size < 1:
        raise TransferError("llmur: --batch-size must be at least 1", exit_code=2)
    try:
        target = parse_database_url(to, "--to", "--to", Path(settings.LLMUR.var_dir))
    except ConfigError as exc:
        raise TransferError(f"llmur: --to: {exc.problem}", exit_code=2) from None
    source = settings.LLMUR.database
    if target.engine == "sqlite" and target.name == ":memory:":
        raise TransferError("llmur: --to: an in-memory SQLite database would vanish when the command ends; "
                            "give a file path (sqlite:////path/to/llmur.sqlite3)", exit_code=2)
    if _same_database(source, target):
        raise TransferError(f"llmur: --to names the current database ({describe(source)}); "
                            "give an empty database to copy into", exit_code=2)
    report = TransferReport(target=describe(target))

    connections.settings[TARGET_ALIAS] = connections.configure_settings({
        SOURCE_ALIAS: connections.settings[SOURCE_ALIAS], TARGET_ALIAS: _target_entry(target)})[TARGET_ALIAS]
    try:
        target_connection = connections[TARGET_ALIAS]
        try:
            target_connection.ensure_connection()
        except Exception as exc:  # noqa: BLE001 - any driver error means "cannot reach" here
            raise TransferError(f"llmur: cannot connect to the target {describe(target)}: "
                                f"{_reason(exc, target.password)}", exit_code=2) from None
        _check_source_migrated()
        model_list = transferred_models()
        held = _rows_holding_data(model_list)
        if held and not force:
            listed = ", ".join(f"{table}: {count} rows" for table, count in list(held.items())[:3])
            more = f", and {len(held) - 3} more tables" if len(held) > 3 else ""
            raise TransferError(f"llmur: the target {describe(target)} already holds data ({listed}{more}); "
                                "give an empty database, or --force to replace its contents", exit_code=2)

        call_command("migrate", database=TARGET_ALIAS, interactive=False, verbosity=0)

        tables = [m._meta.db_table for m in model_list]
        # Constraint checks are off while tables are emptied and filled (parents and children
        # arrive in separate batches), then checked as a whole before commit, as loaddata does.
        with target_connection.constraint_checks_disabled():
            with transaction.atomic(using=TARGET_ALIAS):
                with target_connection.cursor() as cursor:
                    for model in reversed(model_list):
                        cursor.execute(f"DELETE FROM {target_connection.ops.quote_name(model._meta.db_table)}")
                for model in model_list:
                    _copy_table(model, batch_size, progress)
                target_connection.check_constraints(table_names=tables)
                reset = target_connection.ops.sequence_reset_sql(no_style(), model_list)
                if reset:
                    with target_connection.cursor() as cursor:
                        for statement in reset:
                            cursor.execute(statement)
        _verify(model_list, report)
        return report
    finally:
        connections[TARGET_ALIAS].close()
        del connections[TARGET_ALIAS]
        connections.settings.pop(TARGET_ALIAS, None)
