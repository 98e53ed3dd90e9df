"""Seed list prices (USD per token) for common OpenAI and Anthropic models.

Existing rows are left alone, so prices an operator edited survive re-running migrations.
"""
from decimal import Decimal

from django.db import migrations

PER_MILLION = Decimal("0.000001")
PRICES = {
    # model: (provider, input $/1M tokens, output $/1M tokens)
    "gpt-4o": ("openai", "2.50", "10.00"),
    "gpt-4o-mini": ("openai", "0.15", "0.60"),
    "gpt-4.1": ("openai", "2.00", "8.00"),
    "gpt-4.1-mini": ("openai", "0.40", "1.60"),
    "gpt-4.1-nano": ("openai", "0.10", "0.40"),
    "gpt-4-turbo": ("openai", "10.00", "30.00"),
    "gpt-4": ("openai", "30.00", "60.00"),
    "gpt-3.5-turbo": ("openai", "0.50", "1.50"),
    "o1": ("openai", "15.00", "60.00"),
    "o3-mini": ("openai", "1.10", "4.40"),
    "text-embedding-3-small": ("openai", "0.02", "0"),
    "text-embedding-3-large": ("openai", "0.13", "0"),
    "text-embedding-ada-002": ("openai", "0.10", "0"),
    "claude-3-haiku-20240307": ("anthropic", "0.25", "1.25"),
    "claude-3-5-haiku-20241022": ("anthropic", "0.80", "4.00"),
    "claude-3-5-sonnet-20241022": ("anthropic", "3.00", "15.00"),
    "claude-3-7-sonnet-20250219": ("anthropic", "3.00", "15.00"),
    "claude-3-opus-20240229": ("anthropic", "15.00", "75.00"),
    "claude-sonnet-4-20250514": ("anthropic", "3.00", "15.00"),
    "claude-opus-4-20250514": ("anthropic", "15.00", "75.00"),
}


def seed(apps, schema_editor):
    ModelPrice = apps.get_model("billing", "ModelPrice")
    prices = ModelPrice.objects.using(schema_editor.connection.alias)
    for model, (provider, prompt, completion) in PRICES.items():
        prices.get_or_create(model=model, defaults={
            "provider": provider,
            "input_cost_per_token": Decimal(prompt) * PER_MILLION,
            "output_cost_per_token": Decimal(completion) * PER_MILLION,
        })


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
