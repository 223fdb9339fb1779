"""Keys from DRF's `rest_framework.authtoken` become named tokens; its plain-text table goes.

Until this migration two token systems coexisted: named tokens (digests only) and DRF's authtoken
(one key per user, stored in clear in `authtoken_token`). Each DRF key becomes a named token
"migrated" with the digest of the very same key, so a key already handed out keeps working
(ApiToken.find accepts DRF's 40-hex-digit keys), and keeps its creation time. Then the table is
dropped and DRF's migration records are removed, so that no working key is stored in plain text
anywhere in the database.

The table is read with raw SQL: `rest_framework.authtoken` is no longer installed, so it has no
model here. A database that never had the table (a new one) has nothing to convert. Reversing
this migration recreates nothing: the keys are gone, only their digests are left.
"""

import datetime
import hashlib

from django.conf import settings
from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.recorder import MigrationRecorder
from django.db.migrations.state import StateApps
from django.utils import timezone
from django.utils.dateparse import parse_datetime

DRF_TABLE = "authtoken_token"
NAME = "migrated"
SHOWN_PREFIX_LENGTH = 10  # ApiToken.prefix's length (models.SHOWN_PREFIX_LENGTH)


def _aware(value: object) -> datetime.datetime | None:
    """The row's `created` as an aware datetime (SQLite's raw cursor answers text)."""
    if isinstance(value, str):
        value = parse_datetime(value)
    if not isinstance(value, datetime.datetime):
        return None
    if settings.USE_TZ and timezone.is_naive(value):
        value = timezone.make_aware(value, datetime.UTC)
    return value


def convert_drf_keys(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    connection = schema_editor.connection
    if DRF_TABLE not in connection.introspection.table_names():
        return
    ApiToken = apps.get_model("tokens", "ApiToken")
    User = apps.get_model(settings.AUTH_USER_MODEL)
    table = schema_editor.quote_name(DRF_TABLE)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {schema_editor.quote_name('key')}, user_id, created FROM {table}"  # noqa: S608
        )
        rows = cursor.fetchall()
    users = set(User.objects.filter(pk__in={row[1] for row in rows}).values_list("pk", flat=True))
    for key, user_id, created in rows:
        digest = hashlib.sha256(key.encode()).hexdigest()
        if not key or user_id not in users or ApiToken.objects.filter(digest=digest).exists():
            continue
        token = ApiToken.objects.create(
            user_id=user_id, name=NAME, prefix=key[:SHOWN_PREFIX_LENGTH], digest=digest
        )
        if (created_at := _aware(created)) is not None:
            # created_at is auto_now_add: the original time can only be written afterwards.
            ApiToken.objects.filter(pk=token.pk).update(created_at=created_at)
    schema_editor.execute(f"DROP TABLE {table}")
    MigrationRecorder(connection).migration_qs.filter(app="authtoken").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("tokens", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RunPython(convert_drf_keys, migrations.RunPython.noop, elidable=False),
    ]
