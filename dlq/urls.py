from django.urls import path

from dlq import api, views

urlpatterns = [
    path("dead-letters/", views.inbox, name="dlq"),
    path("dead-letters/groups/", views.groups, name="dlq_groups"),
    path("dead-letters/sources/", views.sources, name="dlq_sources"),
    path("dead-letters/sources/save", views.source_save, name="dlq_source_save"),
    path("dead-letters/replay", views.replay, name="dlq_replay"),
    path("dead-letters/replay/preview", views.replay_preview, name="dlq_replay_preview"),
    path("dead-letters/status", views.set_status, name="dlq_status"),
    path("dead-letters/status/preview", views.status_preview, name="dlq_status_preview"),
    path("dead-letters/<int:dead_letter_id>/", views.detail, name="dlq_detail"),
    path("dead-letters/<int:dead_letter_id>/edit-replay", views.edit_replay, name="dlq_edit_replay"),
    path("api/v1/dead-letters", api.dead_letters, name="api_dead_letters"),
    path("api/v1/dead-letters/export", api.export, name="api_dead_letters_export"),
    path("api/v1/dead-letters/replay", api.replay, name="api_dead_letters_replay"),
    path("api/v1/dead-letters/archive", api.set_status, {"status": "archived"}, name="api_dead_letters_archive"),
    path("api/v1/dead-letters/discard", api.set_status, {"status": "discarded"}, name="api_dead_letters_discard"),
    path("api/v1/dead-letters/restore", api.set_status, {"status": "new"}, name="api_dead_letters_restore"),
    path("api/v1/dead-letters/<int:dead_letter_id>", api.dead_letter, name="api_dead_letter"),
    path("api/v1/dead-letters/<int:dead_letter_id>/edit-replay", api.edit_replay, name="api_dead_letter_edit"),
    path("api/v1/dead-letter-groups", api.dead_letter_groups, name="api_dead_letter_groups"),
]
