from django.urls import path

from dlq.consumers import DeadLettersConsumer

websocket_urlpatterns: list = [path("ws/dlq/", DeadLettersConsumer.as_asgi())]
