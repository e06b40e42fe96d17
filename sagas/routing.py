from django.urls import path

from sagas.consumers import SagasConsumer

websocket_urlpatterns = [path("ws/sagas/", SagasConsumer.as_asgi())]
