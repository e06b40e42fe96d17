from django.urls import path

from outbox.consumers import OutboxConsumer

websocket_urlpatterns = [path("ws/outbox/", OutboxConsumer.as_asgi())]
