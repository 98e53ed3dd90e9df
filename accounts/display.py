"""How the admin shows money, budgets and states: one place, so every page writes them alike."""
from __future__ import annotations

from decimal import Decimal

from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.html import format_html

from llmur.core.money import money


def budget_bar(spend: Decimal | None, max_budget: Decimal | None, soft_budget: Decimal | None = None) -> str:
    """Spend against budget as a small bar: green, amber past the soft budget, red at 90 % and over.

    Amounts as refusals and alerts write them (llmur.core.money): cents, or as many decimals as a
    smaller amount needs to be true ($0.0021 of $0.002, not of $0.00).
    """
    spend = spend or Decimal(0)
    if not max_budget:
        return format_html('<span class="llmur-spend">{}</span> <span class="llmur-muted">no budget</span>',
                           money(spend))
    ratio = float(spend / max_budget) if max_budget else 0.0
    state = "over" if ratio >= 0.9 else "soft" if soft_budget and spend >= soft_budget else "ok"
    width = max(0, min(100, round(ratio * 100)))
    return format_html(
        '<div class="llmur-budget llmur-budget-{}" title="{} of {}">'
        '<div class="llmur-bar"><div style="width:{}%"></div></div>'
        '<small>{} of {} ({}%)</small></div>',
        state, money(spend), money(max_budget), width, money(spend), money(max_budget), round(ratio * 100))


def key_status(*, blocked: bool, expires_at) -> str:
    """A key's state in words, coloured: Active, Blocked, Expired (a blocked key stays Blocked)."""
    if blocked:
        return format_html('<span class="llmur-status llmur-status-bad">{}</span>', "Blocked")
    if expires_at is not None and expires_at <= timezone.now():
        return format_html('<span class="llmur-status llmur-status-bad">{}</span>', "Expired")
    return format_html('<span class="llmur-status llmur-status-ok">{}</span>', "Active")


def entity_status(*, blocked: bool, word: str = "Blocked") -> str:
    """A team's, organization's or user's state: Active or Blocked (never a check mark that reads backwards)."""
    if blocked:
        return format_html('<span class="llmur-status llmur-status-bad">{}</span>', word)
    return format_html('<span class="llmur-status llmur-status-ok">{}</span>', "Active")


def usage_link(kind: str, obj) -> str:
    """A link to the entity's usage page (spend and requests per day), served by the billing admin."""
    if obj is None or obj.pk is None:
        return "-"
    try:
        url = reverse("admin:billing_usage", args=[kind, obj.pk])
    except NoReverseMatch:  # billing's pages are not installed
        return "-"
    return format_html('<a href="{}">Spend and requests per day</a>', url)
