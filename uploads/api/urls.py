from django.urls import path, re_path

from . import schema, tokens, views  # noqa: F401  (schema registers OpenAPI extensions)

app_name = "uploads"

# Ids are matched as plain segments and parsed in the view, so a malformed id is a JSON 404.
urlpatterns = [
    path("uploads/", views.UploadListApi.as_view(), name="list"),
    path("uploads/<str:pk>/", views.UploadDetailApi.as_view(), name="detail"),
    path("uploads/<str:pk>/sign/", views.UploadSignApi.as_view(), name="sign"),
    path("uploads/<str:pk>/parts/", views.UploadPartsApi.as_view(), name="parts"),
    path("uploads/<str:pk>/complete/", views.UploadCompleteApi.as_view(), name="complete"),
    path("uploads/<str:pk>/download/", views.UploadDownloadApi.as_view(), name="download"),
    path("auth/token/", tokens.TokenLoginApi.as_view(), name="token-login"),
    path("auth/tokens/", tokens.TokenListApi.as_view(), name="token-list"),
    path("auth/tokens/<str:pk>/", tokens.TokenDetailApi.as_view(), name="token-detail"),
    re_path(r"^.*$", views.ApiNotFound.as_view(), name="not-found"),
]
