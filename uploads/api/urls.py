from django.urls import path, re_path

from . import views

app_name = "uploads"

# Ids are matched as plain segments and parsed in the view, so a malformed id is a JSON 404.
urlpatterns = [
    path("uploads/", views.UploadListApi.as_view(), name="list"),
    path("uploads/<str:pk>/", views.UploadDetailApi.as_view(), name="detail"),
    path("uploads/<str:pk>/sign/", views.UploadSignApi.as_view(), name="sign"),
    path("uploads/<str:pk>/parts/", views.UploadPartsApi.as_view(), name="parts"),
    path("uploads/<str:pk>/complete/", views.UploadCompleteApi.as_view(), name="complete"),
    re_path(r"^.*$", views.ApiNotFound.as_view(), name="not-found"),
]
