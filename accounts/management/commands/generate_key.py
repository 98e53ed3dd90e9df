"""python manage.py generate_key: issue a virtual key from the shell; the plaintext is the last line of stdout."""
from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts import selectors, services
from accounts.models import Project, Team
from accounts.policy import Actor
from llmur.core.errors import LlmurError


class OneLineParser(CommandParser):
    """argparse prints usage plus the error; operators and scripts want the one line that says what to fix."""

    def error(self, message: str):
        if self.called_from_command_line:
            sys.stderr.write(f"generate_key: {message} (see --help)\n")
            sys.exit(2)
        raise CommandError(f"generate_key: {message}", returncode=2)


def _team(value: str) -> Team:
    """By team_id (the public id the API speaks), else by alias when exactly one team has it."""
    by_id = Team.objects.filter(public_id=value).first()
    if by_id is not None:
        return by_id
    matches = list(Team.objects.filter(name=value)[:2])
    if len(matches) != 1:
        problem = "no such team" if not matches else "several teams have this alias; give its team_id"
        raise CommandError(f"--team {value!r}: {problem}", returncode=2)
    return matches[0]


def _project(value: str) -> Project:
    if value.isdigit():
        return selectors.project_get(project_id=value)
    matches = list(Project.objects.filter(name=value)[:2])
    if len(matches) != 1:
        raise CommandError(f"--project {value!r}: "
                           f"{'no such project' if not matches else 'several projects have this name; give its id'}",
                           returncode=2)
    return matches[0]


class Command(BaseCommand):
    help = ("Issue a virtual key. The plaintext key is printed once, as the last line of stdout; only its digest "
            "is stored.")

    def create_parser(self, prog_name, subcommand, **kwargs):
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.__class__ = OneLineParser  # same parser, one-line errors
        return parser

    def add_arguments(self, parser):
        parser.add_argument("--alias", default="", help="key_alias, shown in the admin and reports")
        parser.add_argument("--user", help="owner user (user_id / username)")
        parser.add_argument("--team", help="owner team (id or name)")
        parser.add_argument("--project", help="owner project (id or name)")
        parser.add_argument("--models", help="comma-separated allow-list, e.g. gpt-4o,claude-sonnet; empty allows all")
        parser.add_argument("--max-budget", help="US dollars, e.g. 25 or 2.5")
        parser.add_argument("--budget-duration", help="budget reset period: 30s, 30m, 1h, 1d, 7d, 30d")
        parser.add_argument("--rpm", help="requests per minute")
        parser.add_argument("--tpm", help="tokens per minute")
        parser.add_argument("--expires", help="ISO date-time (2030-01-31T00:00:00Z) or a duration from now (30d)")

    def handle(self, *args, **opts):
        try:
            user = selectors.user_get(user_id=opts["user"]) if opts["user"] else None
            team = _team(opts["team"]) if opts["team"] else None
            project = _project(opts["project"]) if opts["project"] else None
            expires = opts["expires"]
            if expires and expires[-1:] in "smhd" and expires[:-1].isdigit():
                expires_at = services.parse_expiry(duration=expires)
            else:
                expires_at = services.parse_expiry(expires=expires)
            key, plaintext = services.key_create(
                by=Actor.system("manage.py generate_key"), key_alias=opts["alias"], user=user, team=team,
                project=project, models=opts["models"], expires_at=expires_at,
                max_budget=opts["max_budget"], budget_duration=opts["budget_duration"] or "",
                rpm_limit=opts["rpm"], tpm_limit=opts["tpm"],
            )
        except LlmurError as exc:
            flag = {"max_budget": "--max-budget", "budget_duration": "--budget-duration", "rpm_limit": "--rpm",
                    "tpm_limit": "--tpm", "models": "--models", "user_id": "--user", "team_id": "--team",
                    "project_id": "--project", "expires": "--expires", "duration": "--expires"}.get(exc.param or "")
            raise CommandError(f"{flag}: {exc.message}" if flag else exc.message, returncode=2) from None
        owner = ", ".join(f"{label} {value}" for label, value in
                          (("user", user), ("team", key.team), ("project", project)) if value) or "no owner"
        self.stdout.write(f"Created key {key.display} (id {key.pk}, alias {key.key_alias or '-'}, {owner}).")
        self.stdout.write("Store it now: it is not shown again.")
        self.stdout.write(plaintext)
