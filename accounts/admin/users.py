"""People: roles, passwords (through the services), budgets."""
from __future__ import annotations

from contextvars import ContextVar

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminPasswordChangeForm

from accounts import policy, services
from accounts.admin.base import BUDGET_FIELDSET, LIMIT_FORM_FIELDS, RoleScopedAdmin
from accounts.models import Role, User
from accounts.policy import Actor

# Set while the admin's password page runs, so its form saves through accounts.services as this actor.
_password_changed_by: ContextVar[Actor | None] = ContextVar("llmur_password_changed_by", default=None)


class PasswordChangeForm(AdminPasswordChangeForm):
    """Django's admin password form, saved through services.user_update (policy check and audit)."""

    def save(self, commit=True):
        by = _password_changed_by.get()
        if by is None:
            raise RuntimeError("PasswordChangeForm is saved only by UserAdmin.user_change_password")
        usable = self.cleaned_data.get("set_usable_password", True)
        self.user = services.user_update(by=by, user=self.user,
                                         password=self.cleaned_data["password1"] if usable else None)
        return self.user


def role_label(user: User) -> str:
    """What the user may do, as a label: a superuser is a proxy admin whatever its role field says."""
    if user.is_superuser:
        return f"{Role.PROXY_ADMIN.label} (superuser)"
    return user.get_role_display()


@admin.register(User)
class UserAdmin(RoleScopedAdmin, DjangoUserAdmin):
    """A person's account is a proxy admin's or their own (issue 16.2): team admins see their members here
    but change nothing of theirs."""

    change_password_form = PasswordChangeForm
    list_display = ["username", "role_label", "active", "spend_vs_budget", "email"]
    usage_kind = "user"
    list_filter = ["role", "is_staff", "is_active", ("date_joined", admin.DateFieldListFilter)]
    search_fields = ["username", "email", "first_name", "last_name"]
    readonly_fields = ["effective_role", "spend_vs_budget", "last_login", "date_joined"]
    fieldsets = [
        (None, {"fields": ("username", "password")}),
        ("Person", {"fields": ("first_name", "last_name", "email")}),
        ("Role", {"fields": ("effective_role", "role", "is_active", "is_staff", "is_superuser", "allowed_models",
                             "metadata")}),
        BUDGET_FIELDSET,
        ("Dates", {"fields": ("last_login", "date_joined")}),
    ]
    add_fieldsets = [(None, {"classes": ("wide",), "fields": ("username", "email", "role", "password1", "password2")})]

    def visible(self, actor):
        return policy.visible_users(actor)

    def may_change(self, actor, obj):
        return policy.can_change_user(actor, obj)

    def may_delete(self, actor, obj):
        return actor.is_proxy_admin

    def may_add(self, actor):
        return actor.is_proxy_admin

    @admin.display(description="role", ordering="role")
    def role_label(self, obj: User) -> str:
        return role_label(obj)

    @admin.display(description="effective role")
    def effective_role(self, obj: User | None) -> str:
        return role_label(obj) if obj is not None and obj.pk is not None else "-"

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if not self._actor(request).is_proxy_admin:
            fields += ["username", "role", "is_active", "is_staff", "is_superuser", "allowed_models",
                       *LIMIT_FORM_FIELDS]
        return fields

    def user_change_password(self, request, id, form_url=""):
        token = _password_changed_by.set(self._actor(request))
        try:
            return super().user_change_password(request, id, form_url)
        finally:
            _password_changed_by.reset(token)

    def create(self, actor, form):
        data = form.cleaned_data
        return services.user_create(by=actor, username=data["username"], email=data.get("email") or "",
                                    role=data.get("role") or "internal_user", password=data.get("password1"))

    def update(self, actor, obj, fields):
        return services.user_update(by=actor, user=obj, **fields)

    def remove(self, actor, obj):
        services.user_delete(by=actor, user=obj)
