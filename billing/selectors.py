"""Reads of the billing app."""
from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from billing.models import ModelPrice, SpendLog
from billing.services import ENTITY_MODELS


def entity_spend_get(*, kind: str, pk: int) -> Decimal:
    """An entity's settled spend in its current budget period (0 for an entity that is gone)."""
    value = ENTITY_MODELS[kind].objects.filter(pk=pk).values_list("spend", flat=True).first()
    return value if value is not None else Decimal(0)


def team_member_owners(*, pk: int) -> tuple[int, int] | None:
    """A team membership's (team pk, user pk), as spend events name them; None when it is gone."""
    return ENTITY_MODELS["team_member"].objects.filter(pk=pk).values_list("team_id", "user_id").first()


def entity_name_get(*, kind: str, pk: int) -> str:
    """The name people know an entity by: a team's alias (else its team_id), a project's or organization's name
    (an organization without one: its organization_id), a user's username."""
    model = ENTITY_MODELS[kind]
    field = "username" if kind == "user" else "key_alias" if kind == "key" else "name"
    if kind in ("team", "organization"):
        row = model.objects.filter(pk=pk).values_list(field, "public_id").first()
        return str((row[0] or row[1]) if row else "")
    return str(model.objects.filter(pk=pk).values_list(field, flat=True).first() or "")


def spend_unbooked_request_ids(*, request_ids: Iterable[str]) -> set[str]:
    """Of these request ids, those whose cost is not yet in the database (no row, or not booked)."""
    wanted = set(request_ids)
    if not wanted:
        return set()
    booked: set[str] = set()
    ids = list(wanted)
    for start in range(0, len(ids), 1000):
        booked.update(SpendLog.objects.filter(request_id__in=ids[start:start + 1000], booked=True)
                      .values_list("request_id", flat=True))
    return wanted - booked


def budget_snapshot(*, kind: str, pk: int, pending: dict[str, Decimal]) -> Decimal:
    """Spend for rebuilding a budget counter: the entity's booked spend plus its pending events.

    `pending` maps request ids still in the spend queue to their cost for this entity; those the
    database has already booked are in `spend` and are not added twice. The booked ids are read
    before the spend, so an event booked in between is counted twice rather than not at all:
    a rebuilt counter errs towards refusing early, never towards overshooting.
    """
    unbooked = spend_unbooked_request_ids(request_ids=pending)
    spend = entity_spend_get(kind=kind, pk=pk)
    return spend + sum((pending[r] for r in unbooked), Decimal(0))


def model_prices_list() -> list[ModelPrice]:
    """Every priced model, by name: the models llmur knows the cost of."""
    return list(ModelPrice.objects.order_by("model"))
