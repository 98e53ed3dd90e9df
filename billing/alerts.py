"""Budget alerts: detect thresholds crossed when spend is booked, deliver them by webhook and e-mail.

Detection runs where spend becomes known for certain: billing.services books each batch of spend
events (from the Redis stream via Celery, or from the in-process writer) and, still inside that
transaction, calls :func:`budget_alerts_check` with what it added per entity. The owners' rows are
locked by the booking UPDATE, so the spend read back is exact and `spend - added` is what it was
before: a threshold is crossed by exactly one batch, however many requests ran at once and however
many workers drain. The unique constraint on (entity, threshold, period start) is the second
guard. Nothing here touches the request path.

Thresholds: soft_budget when the entity has one, and percentages of max_budget (config
`alerting.thresholds`, default 50/80/100, or the team's own in the admin for the team, its keys
and its projects). A budget period starts at the last reset (budget_reset_at - budget_duration);
budgets that never reset have one period.

Delivery: one AlertDelivery row per channel, sent after commit by the Celery task
billing.alert_deliver (in embedded mode by a background thread). Webhooks are JSON POSTs signed as
``X-Llmur-Signature: sha256=HEX(HMAC-SHA256(webhook_secret, "<X-Llmur-Timestamp>.<body>"))``;
failures are retried with exponential backoff and marked dead after alerting.max_attempts.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal
from typing import Any

import orjson
from celery import current_app
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.durations import parse_duration
from accounts.models import Organization, Project, Team, User, VirtualKey
from billing.models import AlertDelivery, BudgetAlert, TeamAlertSetting
from llmur.core.money import money

logger = logging.getLogger("llmur.billing.alerts")

NO_PERIOD = datetime(1970, 1, 1, tzinfo=dt_timezone.utc)
MAX_BACKOFF_SECONDS = 1800.0
# A delivery whose scheduled retry has not run this long after it was due was lost (a worker died
# holding it, or the broker was down when it was queued): the sweeper queues it again.
STALE_AFTER = timedelta(minutes=5)
_NAME_FIELD = {"key": "key_alias", "user": "username", "project": "name", "team": "name", "organization": "name"}


class AlertError(Exception):
    """A delivery attempt failed; the message says why, without secrets."""


def _models() -> dict[str, Any]:
    return {"key": VirtualKey, "user": User, "project": Project, "team": Team, "organization": Organization}


def period_start(*, budget_duration: str, budget_reset_at: datetime | None) -> datetime:
    """When the entity's current budget period began (NO_PERIOD for a budget that never resets)."""
    period = parse_duration(budget_duration or "")
    if period is None or budget_reset_at is None:
        return NO_PERIOD
    return budget_reset_at - period


# --------------------------------------------------------------------------- detection

def budget_alerts_check(*, booked: dict[str, dict[int, Decimal]]) -> list[int]:
    """Create alerts for thresholds that this booking crossed; returns their ids.

    Call inside the booking transaction, after the spend UPDATEs. Failures are logged and rolled
    back to a savepoint: alerting must never stop spend from being recorded.
    """
    config = settings.LLMUR.config.alerting
    if not config.enabled or not any(booked.get(kind) for kind in _NAME_FIELD):
        return []
    try:
        with transaction.atomic():
            created = _check(booked)
    except Exception:  # noqa: BLE001 - see the docstring
        logger.exception("budget alert check failed; spend is recorded, alerts of this batch skipped")
        return []
    if created:
        ids = list(AlertDelivery.objects.filter(alert_id__in=created).values_list("pk", flat=True))
        transaction.on_commit(lambda: alert_deliveries_dispatch(delivery_ids=ids))
    return created


def _check(booked: dict[str, dict[int, Decimal]]) -> list[int]:
    models = _models()
    crossings: list[dict[str, Any]] = []
    for kind, added in booked.items():
        owners = [pk for pk, amount in added.items() if amount > 0]
        if kind not in models or not owners:
            continue
        team_field = {"key": "team_id", "project": "team_id", "team": "pk"}.get(kind)
        fields = ["pk", "spend", "max_budget", "soft_budget", "budget_duration", "budget_reset_at", _NAME_FIELD[kind]]
        if team_field:
            fields.append(team_field)
        rows = (models[kind].objects.filter(pk__in=owners)
                .filter(Q(max_budget__isnull=False) | Q(soft_budget__isnull=False)).values_list(*fields))
        for row in rows:
            pk, spend, max_budget, soft_budget, duration, reset_at, name = row[:7]
            team_id = row[7] if team_field else None
            crossings.append({"kind": kind, "pk": pk, "name": str(name or ""), "spend": spend, "before":
                              spend - added[pk], "max_budget": max_budget, "soft_budget": soft_budget,
                              "period_start": period_start(budget_duration=duration, budget_reset_at=reset_at),
                              "team_id": team_id})
    if not crossings:
        return []
    team_ids = {c["team_id"] for c in crossings if c["team_id"]}
    team_settings = {s.team_id: s for s in TeamAlertSetting.objects.filter(team_id__in=team_ids)} if team_ids else {}
    created: list[int] = []
    for entity in crossings:
        setting = team_settings.get(entity["team_id"])
        if setting is not None and not setting.enabled:
            continue
        for label, amount in _thresholds(entity, setting):
            if entity["before"] < amount <= entity["spend"]:
                alert_id = _create(entity, label, amount, setting)
                if alert_id is not None:
                    created.append(alert_id)
    return created


def _thresholds(entity: dict[str, Any], setting: TeamAlertSetting | None) -> list[tuple[str, Decimal]]:
    found: list[tuple[str, Decimal]] = []
    if entity["soft_budget"] is not None and entity["soft_budget"] > 0:
        found.append(("soft", entity["soft_budget"]))
    if entity["max_budget"] is not None and entity["max_budget"] > 0:
        percents = _percents(setting.thresholds) if setting is not None and setting.thresholds else None
        for percent in percents or settings.LLMUR.config.alerting.thresholds:
            found.append((f"{percent:g}%", (entity["max_budget"] * Decimal(str(percent)) / 100).quantize(
                Decimal("0.00000001"))))
    return found


def _percents(values: Any) -> list[float]:
    """A team's thresholds as entered in the admin; entries that are no percentage are skipped."""
    out = []
    for value in values if isinstance(values, list) else []:
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if 0 < number <= 1000:
            out.append(number)
    return sorted(set(out))


def _create(entity: dict[str, Any], label: str, amount: Decimal, setting: TeamAlertSetting | None) -> int | None:
    try:
        with transaction.atomic():
            alert = BudgetAlert.objects.create(
                entity_kind=entity["kind"], entity_id=entity["pk"], entity_name=entity["name"][:200], threshold=label,
                threshold_amount=amount, spend=entity["spend"], max_budget=entity["max_budget"],
                period_start=entity["period_start"])
    except IntegrityError:
        return None   # this threshold already alerted in this period
    config = settings.LLMUR.config.alerting
    targets: list[tuple[str, str]] = []
    for url in (config.webhook_url, setting.webhook_url if setting else ""):
        if url:
            targets.append((AlertDelivery.Channel.WEBHOOK, url))
    for emails in (", ".join(config.email_to), setting.email_to if setting else ""):
        if emails and emails.strip():
            targets.append((AlertDelivery.Channel.EMAIL, emails.strip()))
    AlertDelivery.objects.bulk_create([AlertDelivery(alert=alert, channel=channel, target=target[:1000])
                                       for channel, target in dict.fromkeys(targets)])
    logger.warning("budget alert: %s", alert_message(alert))
    return alert.pk


def alert_message(alert: BudgetAlert) -> str:
    who = f"{alert.entity_kind} " + (repr(alert.entity_name) if alert.entity_name else str(alert.entity_id))
    if alert.threshold == "soft":
        return f"{who} reached its soft_budget {money(alert.threshold_amount)}: spend {money(alert.spend)}"
    return (f"{who} reached {alert.threshold} of its max_budget {money(alert.max_budget)}: "
            f"spend {money(alert.spend)}")


# --------------------------------------------------------------------------- delivery

def alert_payload(alert: BudgetAlert) -> bytes:
    """The webhook body: one JSON object, money as decimal strings."""
    return orjson.dumps({
        "type": "budget_alert", "alert_id": alert.pk, "entity_kind": alert.entity_kind,
        "entity_id": alert.entity_id, "entity_name": alert.entity_name, "threshold": alert.threshold,
        "threshold_amount": str(alert.threshold_amount), "spend": str(alert.spend),
        "max_budget": None if alert.max_budget is None else str(alert.max_budget),
        "period_start": alert.period_start.isoformat(), "created_at": alert.created_at.isoformat(),
        "message": alert_message(alert),
    })


def webhook_signature(*, secret: str, timestamp: str, body: bytes) -> str:
    """What X-Llmur-Signature carries: sha256=HEX(HMAC-SHA256(secret, timestamp + "." + body))."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def _send_webhook(delivery: AlertDelivery) -> None:
    import requests

    config = settings.LLMUR.config.alerting
    if config.webhook_secret is None or not config.webhook_secret.get_secret_value():
        raise AlertError("alerting.webhook_secret is not set, so the webhook cannot be signed")
    body = alert_payload(delivery.alert)
    timestamp = str(int(time.time()))
    headers = {"Content-Type": "application/json", "User-Agent": "llmur-alerts",
               "X-Llmur-Timestamp": timestamp, "X-Llmur-Delivery": str(delivery.pk),
               "X-Llmur-Signature": webhook_signature(secret=config.webhook_secret.get_secret_value(),
                                                      timestamp=timestamp, body=body)}
    try:
        response = requests.post(delivery.target, data=body, headers=headers, timeout=config.webhook_timeout,
                                 allow_redirects=False)
    except requests.RequestException as exc:
        raise AlertError(f"webhook unreachable: {exc.__class__.__name__}") from None
    if not 200 <= response.status_code < 300:
        raise AlertError(f"webhook answered HTTP {response.status_code}")


def _send_email(delivery: AlertDelivery) -> None:
    from django.core.mail import send_mail

    alert = delivery.alert
    recipients = [address.strip() for address in delivery.target.split(",") if address.strip()]
    try:
        send_mail(subject=f"[llmur] budget alert: {alert.entity_kind} {alert.entity_name or alert.entity_id} "
                          f"at {alert.threshold}",
                  message=alert_message(alert) + f"\n\nBudget period since {alert.period_start.isoformat()}.\n",
                  from_email=settings.LLMUR.config.alerting.email_from, recipient_list=recipients)
    except Exception as exc:  # noqa: BLE001 - SMTP and backend errors of every kind
        raise AlertError(f"e-mail not sent: {exc.__class__.__name__}") from None


def alert_delivery_attempt(*, delivery_id: int) -> float | None:
    """Make one attempt; returns the seconds to wait before the next one, or None when finished."""
    config = settings.LLMUR.config.alerting
    with transaction.atomic():
        delivery = (AlertDelivery.objects.select_for_update().filter(pk=delivery_id).first())
        if delivery is None or delivery.status in (AlertDelivery.Status.DELIVERED, AlertDelivery.Status.DEAD):
            return None
        delivery.attempts += 1
        delivery.last_attempt_at = timezone.now()
        delivery.save(update_fields=["attempts", "last_attempt_at"])
    delivery.alert = BudgetAlert.objects.get(pk=delivery.alert_id)
    try:
        (_send_webhook if delivery.channel == AlertDelivery.Channel.WEBHOOK else _send_email)(delivery)
    except AlertError as exc:
        error = str(exc)[:500]
    else:
        AlertDelivery.objects.filter(pk=delivery.pk).update(
            status=AlertDelivery.Status.DELIVERED, delivered_at=timezone.now(), last_error="", next_attempt_at=None)
        return None
    if delivery.attempts >= config.max_attempts:
        AlertDelivery.objects.filter(pk=delivery.pk).update(status=AlertDelivery.Status.DEAD, last_error=error,
                                                            next_attempt_at=None)
        logger.error("alert delivery %s (%s) dead after %d attempts: %s", delivery.pk, delivery.channel,
                     delivery.attempts, error)
        return None
    wait = min(MAX_BACKOFF_SECONDS, config.retry_backoff_seconds * 2 ** (delivery.attempts - 1))
    AlertDelivery.objects.filter(pk=delivery.pk).update(
        status=AlertDelivery.Status.RETRYING, last_error=error,
        next_attempt_at=timezone.now() + timedelta(seconds=wait))
    logger.warning("alert delivery %s (%s) attempt %d failed, retrying in %.1f s: %s", delivery.pk, delivery.channel,
                   delivery.attempts, wait, error)
    return wait


DELIVER_TASK = "billing.alert_deliver"


def alert_deliveries_dispatch(*, delivery_ids: list[int]) -> None:
    """Queue deliveries: Celery tasks with a broker; in embedded mode, a background thread."""
    if not delivery_ids:
        return
    if getattr(settings, "CELERY_TASK_ALWAYS_EAGER", False):
        # Embedded mode has no worker: retries sleep in a thread of their own, not in the writer.
        threading.Thread(target=_deliver_in_thread, args=(list(delivery_ids),), daemon=True,
                         name="llmur-alerts").start()
        return
    for delivery_id in delivery_ids:
        try:
            # By name: the task module (billing/alert_tasks.py) calls this one, not the other way round.
            current_app.send_task(DELIVER_TASK, args=[delivery_id])
        except Exception as exc:  # noqa: BLE001 - broker down: the sweeper queues it later
            logger.warning("alert delivery %s not queued (%s); the sweeper retries it", delivery_id,
                           exc.__class__.__name__)


def _deliver_in_thread(delivery_ids: list[int]) -> None:
    from django.db import close_old_connections

    try:
        for delivery_id in delivery_ids:
            while True:
                wait = alert_delivery_attempt(delivery_id=delivery_id)
                if wait is None:
                    break
                time.sleep(wait)
    except Exception:  # noqa: BLE001 - a daemon thread has nobody to report to but the log
        logger.exception("alert delivery failed")
    finally:
        close_old_connections()


def alert_deliveries_sweep(*, now: datetime | None = None) -> list[int]:
    """Queue again deliveries that were never sent or whose retry was lost; returns their ids."""
    now = now or timezone.now()
    stale = now - STALE_AFTER
    ids = list(AlertDelivery.objects.filter(
        Q(status=AlertDelivery.Status.PENDING, alert__created_at__lt=stale)
        | Q(status=AlertDelivery.Status.RETRYING, next_attempt_at__lt=stale)).values_list("pk", flat=True)[:1000])
    if ids:
        AlertDelivery.objects.filter(pk__in=ids).update(next_attempt_at=now)
        alert_deliveries_dispatch(delivery_ids=ids)
    return ids
