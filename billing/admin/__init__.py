"""Admin pages for spend: the ledger and its rollups, prices, alerts, refusals; model health and usage views.

Pages register on the default admin site; composition (llmur/admin_site.py) mounts the views of
billing/admin_pages.py and orders the menu.
"""
from billing.admin import alerts, prices, refusals, spend  # noqa: F401
