"""The management API fixtures (a master key, a world of roles) for the accounts tests that call it."""
from tests.accounts.api.conftest import admin_api, master_key, world  # noqa: F401 - fixtures
