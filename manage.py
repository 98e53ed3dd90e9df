#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "llmur.settings")
    # Commands are short-lived: plain connections, so an unreachable PostgreSQL fails at once
    # instead of after psycopg's pool timeout (llmur/settings.py reads this).
    os.environ.setdefault("LLMUR_DATABASE_POOL", "off")
    from llmur.cli import run_guarded
    from django.core.management import execute_from_command_line

    run_guarded(execute_from_command_line, sys.argv)


if __name__ == "__main__":
    main()
