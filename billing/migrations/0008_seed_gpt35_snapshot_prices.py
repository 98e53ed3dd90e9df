"""Seed list prices (USD per token) for OpenAI's dated gpt-3.5-turbo snapshots and gpt-3.5-turbo-instruct.

Deployments that name a snapshot (`openai/gpt-3.5-turbo-0301`, LiteLLM's CI `fake-openai-endpoint`)
were booked at cost 0 and escaped every budget. Existing rows are left alone, so prices an operator
edited survive re-running migrations.
"""
from decimal import Decimal

from django.db import migrations

PER_MILLION = Decimal("0.000001")
PRICES = {
    # model: (provider, input $/1M tokens, output $/1M tokens): OpenAI's list prices
    "gpt-3.5-turbo-0125": ("openai", "0.50", "1.50"),
    "gpt-3.5-turbo-1106": ("openai", "1.00", "2.00"),
    "gpt-3.5-turbo-0613": ("openai", "1.50", "2.00"),
    "gpt-3.5-turbo-0301": ("openai", "1.50", "2.00"),
    "gpt-3.5-turbo-instruct": ("openai", "1.50", "2.00"),
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
    dependencies = [("billing", "0007_refusal_counts_and_error_messages")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
