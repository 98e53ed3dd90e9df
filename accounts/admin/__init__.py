"""Admin for organizations, teams, users, projects, keys and the audit log: one module per page family.

Writes go through accounts.services (same validation, policy checks and audit as the API); what
each staff user sees and may change follows accounts.policy, not Django's model permissions, so
the admin and the API enforce one policy. Pages register on the default admin site; composition
(llmur/admin_site.py) decides how the site looks and orders its menu.
"""
from accounts.admin import audit, device, keys, memberships, organizations, projects, teams, users  # noqa: F401
