"""Token login for apps and scripts: obtain a named token with a password, list, revoke.

`POST /api/auth/token/` trades a username and password for a new named token (the key is in
that answer only; the server keeps a digest). `GET /api/auth/tokens/` lists the caller's
tokens and `DELETE /api/auth/tokens/{id}/` revokes one. Each device or script gets its own
token, so revoking one leaves the others working. Login attempts are throttled per address,
and locked per username and address after a few failures (django-axes, uploads/lockout.py).
"""

from django.contrib.auth import authenticate
from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import AnonRateThrottle
from rest_framework.views import APIView

from ..exceptions import InvalidCredentials
from ..lockout import locked_out
from ..tokens.models import NAME_MAX_LENGTH, ApiToken
from ..tokens.services import issue_token, revoke_token
from .authentication import signed_in_user
from .base import PartwiseApiView, RatesFromUploadSettings
from .views import ERRORS

TAGS = ["auth"]


class TokenLoginThrottle(RatesFromUploadSettings, AnonRateThrottle):
    """Every attempt counts, per client address, at the `token_login` rate (default 10/min)."""

    scope = "token_login"

    def get_cache_key(self, request: Request, view: APIView) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


# --- shapes ----------------------------------------------------------------------------------
class TokenLoginInputSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=4096, trim_whitespace=False)
    name = serializers.CharField(
        max_length=NAME_MAX_LENGTH,
        required=False,
        default="api",
        help_text="What the token is for (a device or a script), shown in the token list.",
    )


class ApiTokenSerializer(serializers.ModelSerializer):
    current = serializers.SerializerMethodField(
        help_text="True for the token this request was made with."
    )

    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "created_at", "last_used_at", "current"]
        read_only_fields = fields

    def get_current(self, token: ApiToken) -> bool:
        return self.context.get("current") == token.pk


class IssuedTokenSerializer(ApiTokenSerializer):
    token = serializers.SerializerMethodField(
        help_text="The key, shown only in this answer: send it as `Authorization: Token <key>`."
    )

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "token"]
        read_only_fields = fields

    def get_token(self, token: ApiToken) -> str:
        return str(self.context["key"])


# --- views -----------------------------------------------------------------------------------
class TokenLoginApi(PartwiseApiView):
    # The answer depends on the body only: credentials sent along (a stale token, a session)
    # are ignored rather than refused, and no session means no CSRF question.
    authentication_classes = []
    permission_classes = [AllowAny]
    throttle_classes = [TokenLoginThrottle]

    def get_authenticate_header(self, request: Request) -> str:
        return 'Token realm="api"'  # a wrong password answers 401 with this challenge

    def handle_exception(self, exc: Exception) -> Response:
        # DRF adds the challenge to its own 401s only; InvalidCredentials is a Partwise error.
        response = super().handle_exception(exc)
        if response.status_code == status.HTTP_401_UNAUTHORIZED:
            response.setdefault("WWW-Authenticate", self.get_authenticate_header(self.request))
        return response

    @extend_schema(
        tags=TAGS,
        auth=[],
        request=TokenLoginInputSerializer,
        responses={201: IssuedTokenSerializer, **ERRORS},
        summary="Log in with a username and password and get a new named token",
    )
    def post(self, request: Request) -> Response:
        data = TokenLoginInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = authenticate(
            request._request,
            username=data.validated_data["username"],
            password=data.validated_data["password"],
        )
        if getattr(request._request, "axes_locked_out", False):
            # django-axes: too many failures for this username from this address (this one
            # included); AxesMiddleware would answer the same, this says it where it happens.
            raise locked_out(request._request)
        if user is None:  # wrong password, unknown or inactive user: one answer for all
            raise InvalidCredentials
        token, key = issue_token(user, name=data.validated_data["name"])  # or TooManyTokens
        body = IssuedTokenSerializer(token, context={"current": token.pk, "key": key}).data
        return Response(body, status=status.HTTP_201_CREATED)


class TokenListApi(PartwiseApiView):
    @extend_schema(
        tags=TAGS,
        responses={200: ApiTokenSerializer(many=True), **ERRORS},
        summary="The caller's tokens, newest first (keys are never shown again)",
    )
    def get(self, request: Request) -> Response:
        tokens = ApiToken.objects.filter(user=signed_in_user(request))
        current = getattr(request.auth, "pk", None)
        return Response(ApiTokenSerializer(tokens, many=True, context={"current": current}).data)


class TokenDetailApi(PartwiseApiView):
    @extend_schema(
        tags=TAGS,
        responses={204: OpenApiResponse(description="revoked"), **ERRORS},
        summary="Revoke one of the caller's tokens (it stops working at once)",
    )
    def delete(self, request: Request, pk: str) -> Response:
        if not revoke_token(signed_in_user(request), pk):  # malformed, unknown or another user's
            raise Http404
        return Response(status=status.HTTP_204_NO_CONTENT)
