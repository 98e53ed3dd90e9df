"""Teams and organizations get a public string id (LiteLLM's team_id / organization_id); aliases become
optional and may repeat.

The integer primary keys and every foreign key stay as they are. Existing rows get their primary key
as text for public id, so the ids the API handed out before (numbers) keep naming the same rows;
new rows get the id the client chose or a generated UUID (accounts.models.public_id_new).
"""
from django.db import migrations, models
from django.db.models import Count

import accounts.models


def fill_public_ids(apps, schema_editor):
    for name in ("Organization", "Team"):
        model = apps.get_model("accounts", name)
        for pk in model.objects.filter(public_id__isnull=True).values_list("pk", flat=True).iterator():
            model.objects.filter(pk=pk).update(public_id=str(pk))


def restore_unique_names(apps, schema_editor):
    """Going back needs the old uniqueness: refuse, naming the rows, rather than fail half-way."""
    Organization = apps.get_model("accounts", "Organization")
    Team = apps.get_model("accounts", "Team")
    orgs = Organization.objects.values("name").annotate(n=Count("id")).filter(n__gt=1)
    teams = Team.objects.values("organization_id", "name").annotate(n=Count("id")).filter(n__gt=1)
    empty = Organization.objects.filter(name="").exists() or Team.objects.filter(name="").exists()
    if orgs.exists() or teams.exists() or empty:
        raise RuntimeError("Cannot undo accounts.0004: organizations or teams share an alias (or have none); "
                           "give each a distinct alias first.")


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0003_aliases_log_requests'),
    ]

    operations = [
        migrations.AddField(
            model_name='organization',
            name='public_id',
            field=models.CharField(max_length=200, null=True, verbose_name='organization id'),
        ),
        migrations.AddField(
            model_name='team',
            name='public_id',
            field=models.CharField(max_length=200, null=True, verbose_name='team id'),
        ),
        migrations.RunPython(fill_public_ids, migrations.RunPython.noop, elidable=False),
        migrations.AlterField(
            model_name='organization',
            name='public_id',
            field=models.CharField(default=accounts.models.public_id_new, max_length=200, unique=True,
                                   verbose_name='organization id'),
        ),
        migrations.AlterField(
            model_name='team',
            name='public_id',
            field=models.CharField(default=accounts.models.public_id_new, max_length=200, unique=True,
                                   verbose_name='team id'),
        ),
        # Aliases: optional, and no longer unique.
        migrations.RemoveConstraint(
            model_name='team',
            name='uniq_team_name_per_org',
        ),
        migrations.AlterField(
            model_name='team',
            name='name',
            field=models.CharField(blank=True, max_length=200, verbose_name='team alias'),
        ),
        migrations.AlterField(
            model_name='organization',
            name='name',
            field=models.CharField(blank=True, max_length=200, verbose_name='organization alias'),
        ),
        migrations.AlterModelOptions(
            name='organization',
            options={'ordering': ['name', 'id']},
        ),
        migrations.AlterModelOptions(
            name='team',
            options={'ordering': ['name', 'id']},
        ),
        # Last, so that undoing checks first.
        migrations.RunPython(migrations.RunPython.noop, restore_unique_names, elidable=False),
    ]
