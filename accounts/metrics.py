"""accounts' scrape-time metrics: budget use of organizations, teams and projects (registered in apps.py)."""
from __future__ import annotations

from typing import Iterable

from prometheus_client.core import GaugeMetricFamily, Metric

from accounts.models import Organization, Project, Team

# A bound keeps a scrape cheap with thousands of teams: the most used first.
BUDGET_SERIES_PER_KIND = 200


class BudgetCollector:
    """llmur_budget_used_ratio: spend over max_budget of every organization, team and project that has one."""

    def collect(self) -> Iterable[Metric]:
        family = GaugeMetricFamily("llmur_budget_used_ratio", "Spend in the current budget period over max_budget, "
                                   "per organization, team and project with a max_budget", labels=["kind", "id", "name"])
        try:
            for kind, model in (("organization", Organization), ("team", Team), ("project", Project)):
                rows = (model.objects.filter(max_budget__gt=0).order_by("-spend")
                        .values_list("pk", "name", "spend", "max_budget")[:BUDGET_SERIES_PER_KIND])
                for pk, name, spend, max_budget in rows:
                    family.add_metric([kind, str(pk), str(name)], float(spend / max_budget))
        except Exception:  # noqa: BLE001 - an unreachable database is reported as llmur_dependency_up already
            return
        yield family
