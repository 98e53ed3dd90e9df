"""Form fields the accounts pages share: model allow-lists and budget periods as choices, write-only credentials."""
from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from accounts.durations import parse_duration
from accounts.models import ProjectCredential
from llmur.core.catalog import model_names


class ModelListField(forms.MultipleChoiceField):
    """An allow-list picked among the gateway's models (boxes to tick); none ticked allows every model.

    A name already on the allow-list that the gateway no longer serves stays offered, so saving a
    form never drops it silently.
    """

    widget = forms.CheckboxSelectMultiple

    def __init__(self, **kwargs: Any):
        kwargs.setdefault("required", False)
        kwargs.setdefault("label", "Models")
        kwargs.setdefault("help_text", "Tick the models this may use; none ticked allows every model.")
        super().__init__(choices=self._choices_now, **kwargs)
        self.extra_names: list[str] = []

    def _choices_now(self) -> list[tuple[str, str]]:
        names = list(dict.fromkeys([*model_names(), *self.extra_names]))
        return [(name, name) for name in sorted(names)]

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, (list, tuple)) and value:
            missing = [v for v in value if v not in dict(self.choices)]
            if missing:
                self.extra_names = [*self.extra_names, *missing]
                self.choices = self._choices_now
        return value

    def to_python(self, value: Any) -> list[str]:
        # A scripted post may send names as one comma-separated string.
        items = [value] if isinstance(value, str) else list(value or [])
        return [name.strip() for item in items for name in str(item).split(",") if name.strip()]

    def validate(self, value: list[str]) -> None:
        # Names outside the boxes (a scripted post, a wildcard set through the API) are left to the
        # services and the parents' allow-lists, as the API leaves them.
        if self.required and not value:
            raise ValidationError(self.error_messages["required"], code="required")


BUDGET_PERIODS = [("", "Never resets"), ("1h", "Every hour"), ("1d", "Every day"), ("7d", "Every week (7 days)"),
                  ("30d", "Every 30 days")]


class BudgetPeriodField(forms.ChoiceField):
    """budget_duration as a choice of periods; a period set elsewhere (e.g. "12h" through the API) stays offered."""

    def __init__(self, **kwargs: Any):
        for name in ("max_length", "empty_value"):
            kwargs.pop(name, None)
        kwargs.update(required=False, label="Budget resets", choices=BUDGET_PERIODS,
                      help_text="When spend starts again from zero.")
        super().__init__(**kwargs)

    def prepare_value(self, value: Any) -> Any:
        if value and value not in dict(self.choices):
            self.choices = [*BUDGET_PERIODS, (value, f"Every {value}")]
        return value

    def valid_value(self, value: Any) -> bool:
        return super().valid_value(value) or parse_duration(value) is not None


class ProjectCredentialForm(forms.ModelForm):
    """Write-only: the provider key is typed in, stored encrypted (by the service) and never rendered back."""

    api_key = forms.CharField(widget=forms.PasswordInput(render_value=False), required=False,
                              help_text="Enter to set or replace; never shown again.")

    class Meta:
        model = ProjectCredential
        fields = ["project", "provider", "api_key"]

    def clean(self):
        data = super().clean()
        if not data.get("api_key") and (not self.instance.pk or "provider" in self.changed_data):
            raise forms.ValidationError("Enter the provider's API key.")
        return data
