from django.urls import path

from monitoring.consumers import ConsumersConsumer

websocket_urlpatterns = [path("ws/consumers/", ConsumersConsumer.as_asgi())]
