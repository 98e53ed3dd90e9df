"""Filters and paging for the ledger's pages: choices from small tables, periods as index ranges."""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib import admin
from django.core.paginator import Paginator
from django.db import connection
from django.utils.functional import cached_property

from accounts import policy
from accounts.policy import Actor
from billing.models import ModelPrice, SpendByModel
from billing.periods import PRESETS, preset_days
from llmur.core.catalog import provider_names


class ModelNameFilter(admin.SimpleListFilter):
    """Filter by the model group the caller asked for, among the models that have spend.

    The names come from the day × model rollup (a small table), never from a DISTINCT over the
    ledger, which is a full scan of millions of rows; priced models nobody used are not offered.
    """

    title = "model"
    parameter_name = "model"

    def lookups(self, request, model_admin):
        names = SpendByModel.objects.order_by().values_list("model", flat=True).distinct()[:500]
        return [(name, name) for name in sorted(set(names))]

    def queryset(self, request, queryset):
        return queryset.filter(model=self.value()) if self.value() else queryset


class ProviderFilter(admin.SimpleListFilter):
    """Filter by provider, with the providers of the configured deployments and prices as choices."""

    title = "provider"
    parameter_name = "provider"

    def lookups(self, request, model_admin):
        names = set(provider_names())
        names |= set(ModelPrice.objects.exclude(provider="").order_by().values_list("provider", flat=True).distinct())
        return [(name, name) for name in sorted(names)]

    def queryset(self, request, queryset):
        return queryset.filter(provider=self.value()) if self.value() else queryset


class PeriodFilter(admin.SimpleListFilter):
    """Date presets as ranges on an indexed column: started_at for the ledger, day for the rollups."""

    title = "period"
    parameter_name = "period"
    field = "started_at"

    def lookups(self, request, model_admin):
        return PRESETS

    def queryset(self, request, queryset):
        days = preset_days(self.value() or "")
        if days is None:
            return queryset
        first, last = days
        if self.field == "day":
            return queryset.filter(day__gte=first, day__lte=last)
        zone = ZoneInfo(settings.TIME_ZONE)
        start = dt.datetime.combine(first, dt.time.min, tzinfo=zone)
        end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time.min, tzinfo=zone)
        return queryset.filter(started_at__gte=start, started_at__lt=end)


class DayPeriodFilter(PeriodFilter):
    field = "day"


class ScopedOwnerFilter(admin.RelatedFieldListFilter):
    """Owner choices from the owner's own table, within the viewer's role, not from the ledger's rows.

    Django's RelatedOnlyFieldListFilter runs a DISTINCT over every ledger row to find the owners
    that appear in it; here the choices are the owners the viewer may see (the biggest spenders
    first for keys, capped), and the URL parameter (e.g. key__id__exact) filters on any id.
    """

    CAP = 100

    def field_choices(self, field, request, model_admin):
        actor = Actor.of_request(request)
        model = field.related_model
        if model._meta.model_name == "virtualkey":
            qs = policy.visible_keys(actor).order_by("-spend", "pk")
        elif model._meta.model_name == "team":
            qs = policy.visible_teams(actor).order_by("name")
        elif model._meta.model_name == "project":
            qs = policy.visible_projects(actor).order_by("name")
        elif model._meta.model_name == "user":
            qs = policy.visible_users(actor).order_by("username")
        else:
            return []
        return [(obj.pk, str(obj)) for obj in qs[:self.CAP]]


OWNER_FILTERS = [("key", ScopedOwnerFilter), ("project", ScopedOwnerFilter), ("team", ScopedOwnerFilter),
                 ("user", ScopedOwnerFilter)]


class EstimatedCountPaginator(Paginator):
    """Counts a large table without reading it: PostgreSQL's estimate when unfiltered, else capped.

    The admin shows "N rows" and the page links from this count; an exact COUNT(*) over 10 M ledger
    rows takes seconds. Unfiltered, pg_class.reltuples (kept by autovacuum/ANALYZE) is close enough;
    filtered, counting stops at COUNT_CAP rows, and the page links stop there too.
    """

    COUNT_CAP = 10_000

    @cached_property
    def count(self) -> int:
        qs = self.object_list
        if connection.vendor == "postgresql" and not qs.query.where:
            with connection.cursor() as cursor:
                cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
                               [qs.model._meta.db_table])
                row = cursor.fetchone()
            if row and row[0] >= self.COUNT_CAP:
                return int(row[0])
        return qs.order_by()[:self.COUNT_CAP].count()
