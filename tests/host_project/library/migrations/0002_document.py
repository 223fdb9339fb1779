# The host's model of a finished file, apart from its user model: Partwise's first migration
# needs the user model (AUTH_USER_MODEL), and this one needs Partwise's Upload.

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("library", "0001_initial"),
        ("uploads", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="Document",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("title", models.CharField(max_length=200)),
                (
                    "upload",
                    models.ForeignKey(
                        limit_choices_to={"status": "completed"},
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="documents",
                        to="uploads.upload",
                    ),
                ),
            ],
        ),
    ]
