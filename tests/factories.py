"""Test data: factory_boy factories for the accounts models and the one make_key every test uses.

Rows are written through the ORM into the test database; a test whose rows a server subprocess must
see asks for committed rows (the transactional_db fixture or django_db(transaction=True)).
"""
from __future__ import annotations

from typing import NamedTuple

import factory
from factory.django import DjangoModelFactory

from accounts.keys import key_digest, key_display, key_generate
from accounts.models import Organization, Project, Team, User, VirtualKey

PASSWORD = "pw-123456789-test"


class OrganizationFactory(DjangoModelFactory):
    class Meta:
        model = Organization
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"org-{n}")


class TeamFactory(DjangoModelFactory):
    class Meta:
        model = Team

    name = factory.Sequence(lambda n: f"team-{n}")


class ProjectFactory(DjangoModelFactory):
    """A project belongs to a team or an organization; by default a team of its own."""

    class Meta:
        model = Project

    name = factory.Sequence(lambda n: f"project-{n}")
    team = factory.SubFactory(TeamFactory)


class UserFactory(DjangoModelFactory):
    """A person with a usable password (PASSWORD unless given)."""

    class Meta:
        model = User
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user-{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")
    password = factory.django.Password(PASSWORD)


class SuperuserFactory(UserFactory):
    """An operator who may sign in to the admin."""

    is_staff = True
    is_superuser = True


class VirtualKeyFactory(DjangoModelFactory):
    """A key stored as the gateway stores it (digest and display only); the row carries .plaintext."""

    class Meta:
        model = VirtualKey

    plaintext = factory.LazyFunction(key_generate)
    key_hash = factory.LazyAttribute(lambda key: key_digest(key.plaintext))
    display = factory.LazyAttribute(lambda key: key_display(key.plaintext))

    @classmethod
    def _create(cls, model_class, *args, plaintext: str, **kwargs):
        row = super()._create(model_class, *args, **kwargs)
        row.plaintext = plaintext
        return row


class IssuedKey(NamedTuple):
    plaintext: str
    row: VirtualKey


def make_key(plaintext: str | None = None, **fields) -> IssuedKey:
    """Store a virtual key with these fields (owners, limits, allowed_models, ...): (plaintext, row)."""
    if plaintext is not None:
        fields["plaintext"] = plaintext
    row = VirtualKeyFactory(**fields)
    return IssuedKey(row.plaintext, row)
