"""`python manage.py transfer_database --to URL`: move llmur to another database (see llmur/transfer.py)."""
from __future__ import annotations

from django.core.management.base import BaseCommand

from llmur.transfer import TransferError, transfer_database


class Command(BaseCommand):
    help = ("Copy every llmur table from the current database into an empty one given by --to "
            "(e.g. the embedded SQLite into PostgreSQL or MySQL), then verify row counts and spend totals. "
            "Stop llmur's processes first so nothing writes during the copy.")

    def add_arguments(self, parser):
        parser.add_argument("--to", required=True, metavar="URL",
                            help="target database URL: postgresql://USER:PASSWORD@HOST:5432/NAME, "
                                 "mysql://USER:PASSWORD@HOST:3306/NAME or sqlite:////path/file.sqlite3")
        parser.add_argument("--force", action="store_true",
                            help="replace the contents of a target that already holds data")
        parser.add_argument("--batch-size", type=int, default=1000, metavar="N",
                            help="rows read and written per round trip (default 1000)")

    def handle(self, *args, to: str, force: bool, batch_size: int, verbosity: int, **options):
        try:
            report = transfer_database(to=to, force=force, batch_size=batch_size,
                                       progress=self.stderr._out if verbosity > 0 else None)
        except TransferError as exc:
            self.stderr.write(str(exc))
            raise SystemExit(exc.exit_code) from None
        if verbosity == 0:
            return
        width = max(len(t.table) for t in report.tables)
        self.stdout.write(f"{'table':<{width}}  {'source':>10}  {'target':>10}")
        for table in report.tables:
            self.stdout.write(f"{table.table:<{width}}  {table.source_rows:>10}  {table.target_rows:>10}")
        for name, (source, target) in report.totals.items():
            self.stdout.write(f"{name}: {source} (source) = {target} (target)")
        self.stdout.write(self.style.SUCCESS(
            f"llmur: copied {report.rows} rows in {len(report.tables)} tables to {report.target}; "
            "counts and spend totals match"))
