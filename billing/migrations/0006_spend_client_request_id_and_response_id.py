# The client's x-request-id and the upstream answer's id, searchable beside llmur's own request id
# (issue 16 item 4, issue 17 item 6).

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('billing', '0005_coarse_rollups'),
    ]

    operations = [
        migrations.AddField(
            model_name='spendlog',
            name='client_request_id',
            field=models.CharField(blank=True, help_text='The x-request-id the client sent, if any.', max_length=128),
        ),
        migrations.AddField(
            model_name='spendlog',
            name='response_id',
            field=models.CharField(blank=True, help_text="The upstream answer's id (chatcmpl-…, msg_…).", max_length=128),
        ),
        migrations.AddIndex(
            model_name='spendlog',
            index=models.Index(fields=['client_request_id'], name='spend_client_request_id'),
        ),
        migrations.AddIndex(
            model_name='spendlog',
            index=models.Index(fields=['response_id'], name='spend_response_id'),
        ),
    ]
