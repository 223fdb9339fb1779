"""`manage.py create_token USER [--name NAME]`: issue a named API token and print its key once.

The key goes to stdout alone (so `TOKEN=$(manage.py create_token alice)` works); what it is for
goes to stderr. The server keeps only its digest: the key cannot be shown again, a lost one is
revoked (admin, or DELETE /api/auth/tokens/{id}/) and replaced by a new one.
"""

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ....exceptions import UploadError
from ...models import NAME_MAX_LENGTH
from ...services import issue_token


class Command(BaseCommand):
    help = "Issue a named API token for a user and print its key (shown this once only)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", help="the user the token authenticates as")
        parser.add_argument(
            "--name",
            default="cli",
            help="what the token is for (a device or a script), shown in the token list",
        )

    def handle(self, *args: Any, username: str, name: str, **options: Any) -> None:
        users = get_user_model()
        try:
            user = users.objects.get(**{users.USERNAME_FIELD: username})
        except users.DoesNotExist:
            raise CommandError(f"No user {username!r}.") from None
        if not user.is_active:
            raise CommandError(f"User {username!r} is inactive: a token would not authenticate.")
        if not name or len(name) > NAME_MAX_LENGTH:
            raise CommandError(f"--name must be 1 to {NAME_MAX_LENGTH} characters.")
        try:
            token, key = issue_token(user, name=name)
        except UploadError as error:  # TooManyTokens
            raise CommandError(error.detail) from error
        self.stderr.write(
            f"Token {token.name!r} ({token.prefix}…) for {username}; the key is shown only now:",
            style_func=lambda text: text,  # information, not an error
        )
        self.stdout.write(key)
