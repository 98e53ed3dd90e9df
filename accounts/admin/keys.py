"""Virtual keys: created once (the plaintext shown on one page only), blocked, tightened."""
from __future__ import annotations

import secrets

from django.contrib import admin, messages
from django.contrib.admin.utils import display_for_value
from django.db.models import Q
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from accounts import policy, services
from accounts.admin.base import LimitsWithinParentsForm, RoleScopedAdmin, _service_fields
from accounts.admin.forms import ModelListField
from accounts.display import key_status
from accounts.keys import secret_decrypt, secret_encrypt
from accounts.models import VirtualKey
from llmur.core.errors import LlmurError

# The session entry that carries a new key from the add form's POST to the page that shows it.
NEW_KEYS = "llmur_new_keys"


class VirtualKeyForm(LimitsWithinParentsForm):
    parents, what = ("user", "team", "project", "organization"), "key"
    allowed_models = ModelListField()

    class Meta:
        model = VirtualKey
        fields = ["key_alias", "user", "team", "project", "organization", "allowed_models", "expires_at", "blocked",
                  "metadata", "max_budget", "soft_budget", "budget_duration", "rpm_limit", "tpm_limit",
                  "max_parallel_requests", "aliases", "log_requests", "memory"]


class KeyStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("active", "Active"), ("blocked", "Blocked"), ("expired", "Expired")]

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == "blocked":
            return queryset.filter(blocked=True)
        if self.value() == "expired":
            return queryset.filter(blocked=False, expires_at__lte=now)
        if self.value() == "active":
            return queryset.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now), blocked=False)
        return queryset


@admin.register(VirtualKey)
class VirtualKeyAdmin(RoleScopedAdmin):
    """Keys a staff user owns or administers; owners may only tighten theirs (services.key_update asks the policy).

    The list keeps what fits a laptop screen (name, status, spend against budget, owner, last use);
    the rest is on the key's page.
    """

    scoped_foreign_keys = ("team", "project", "organization", "user")
    form = VirtualKeyForm
    usage_kind = "key"
    list_display = ["name", "status", "spend_vs_budget", "owner", "last_used"]
    list_filter = [KeyStatusFilter, "team", ("last_used_at", admin.DateFieldListFilter),
                   ("created_at", admin.DateFieldListFilter)]
    search_fields = ["key_alias", "display", "user__username", "team__name", "project__name"]
    list_select_related = ["user", "team", "project", "organization"]
    readonly_fields = ["display", "status", "spend_vs_budget", "usage", "budget_reset_at", "created_at", "updated_at",
                       "last_used_at"]
    actions = ["block_selected", "unblock_selected"]

    @admin.display(description="name", ordering="key_alias")
    def name(self, obj: VirtualKey) -> str:
        return format_html('{} <span class="llmur-muted">{}</span>', obj.key_alias, obj.display) if obj.key_alias \
            else obj.display

    @admin.display(description="status", ordering="blocked")
    def status(self, obj: VirtualKey) -> str:
        return key_status(blocked=obj.blocked, expires_at=obj.expires_at)

    @admin.display(description="owner")
    def owner(self, obj: VirtualKey) -> str:
        parts = [f"{label} {value}" for label, value in (("team", obj.team), ("project", obj.project),
                                                         ("user", obj.user), ("org", obj.organization)) if value]
        return ", ".join(parts) or "-"

    @admin.display(description="last used", ordering="last_used_at")
    def last_used(self, obj: VirtualKey) -> str:
        return display_for_value(obj.last_used_at, "never")

    def visible(self, actor):
        return policy.visible_keys(actor)

    def may_change(self, actor, obj):
        return policy.key_rights(actor, obj) >= policy.KeyRights.OWNER

    def may_add(self, actor):
        return True  # anyone who writes may issue their own keys

    def get_fieldsets(self, request, obj=None):
        owner = ("Owner", {"fields": ("user", "team", "project", "organization")})
        main = (None, {"fields": (("display", "status") if obj else ()) + ("key_alias", "allowed_models", "expires_at",
                                                                    "blocked", "metadata", "aliases",
                                                                    "log_requests", "memory")})
        budget = ("Budget and limits", {"fields": (("spend_vs_budget", "usage", "budget_reset_at") if obj else ())
                                        + ("max_budget", "soft_budget", "budget_duration", "rpm_limit", "tpm_limit",
                                           "max_parallel_requests")})
        dates = ("Dates", {"fields": ("created_at", "updated_at", "last_used_at")})
        return [main, owner, budget] + ([dates] if obj else [])

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        actor = self._actor(request)
        data = _service_fields(form)
        if not actor.is_proxy_admin and not (data.get("team") or data.get("project") or data.get("organization")):
            data["user"] = actor.user  # a plain user's own key
        key, plaintext = services.key_create(by=actor, **data)
        obj.pk = key.pk
        obj.display = key.display
        # Post/redirect/get: the page that shows the key is reached by a redirect, so reloading it
        # never posts the form again. The plaintext waits for that one GET in the session, encrypted
        # under the application secret, and is removed from it by the GET that shows it.
        token = secrets.token_urlsafe(16)
        request.session[NEW_KEYS] = {**request.session.get(NEW_KEYS, {}), token: [key.pk, secret_encrypt(plaintext)]}
        request._llmur_new_key_token = token

    def update(self, actor, obj, fields):
        return services.key_update(by=actor, key=obj, **fields)

    def remove(self, actor, obj):
        services.key_delete(by=actor, key=obj)

    def response_add(self, request: HttpRequest, obj: VirtualKey, post_url_continue=None) -> HttpResponse:
        token = getattr(request, "_llmur_new_key_token", None)
        if token is None:
            return super().response_add(request, obj, post_url_continue)
        return HttpResponseRedirect(reverse("admin:accounts_virtualkey_created", args=[token]))

    def get_urls(self):
        return [path("created/<str:token>/", self.admin_site.admin_view(self.key_created_view),
                     name="accounts_virtualkey_created"), *super().get_urls()]

    def key_created_view(self, request: HttpRequest, token: str) -> HttpResponse:
        """Shows a new key once: the first GET takes it out of the session; a reload says it was shown."""
        pending = dict(request.session.get(NEW_KEYS, {}))
        entry = pending.pop(token, None)
        request.session[NEW_KEYS] = pending
        key = VirtualKey.objects.filter(pk=entry[0]).first() if entry else None
        context = {**self.admin_site.each_context(request), "title": "Key created" if key else "Key already shown",
                   "key": key, "plaintext": secret_decrypt(entry[1]) if key else None, "opts": self.model._meta}
        response = TemplateResponse(request, "admin/accounts/virtualkey/key_created.html", context)
        response["Cache-Control"] = "no-store"
        return response

    @admin.action(description="Block selected keys")
    def block_selected(self, request, queryset):
        self._set_blocked(request, queryset, True)

    @admin.action(description="Unblock selected keys")
    def unblock_selected(self, request, queryset):
        self._set_blocked(request, queryset, False)

    def _set_blocked(self, request, queryset, blocked: bool) -> None:
        actor = self._actor(request)
        done, refused = 0, []
        # One save per key (not queryset.update): each sends post_save, which revokes cached copies.
        for key in queryset.select_related("project"):
            try:
                services.key_set_blocked(by=actor, key=key, blocked=blocked)
                done += 1
            except LlmurError as exc:
                refused.append(f"{key}: {exc.message}")
        self.message_user(request, f"{'Blocked' if blocked else 'Unblocked'} {done} key(s).", messages.SUCCESS)
        if refused:
            self.message_user(request, "Left alone: " + " ".join(refused), messages.WARNING)
