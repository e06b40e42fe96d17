from django.urls import path

from console import consumers
from dlq.routing import websocket_urlpatterns as dlq_ws
from monitoring.routing import websocket_urlpatterns as monitoring_ws
from outbox.routing import websocket_urlpatterns as outbox_ws
from sagas.routing import websocket_urlpatterns as sagas_ws

websocket_urlpatterns = [
    path("ws/operations/", consumers.OperationsConsumer.as_asgi()),
    path("ws/dashboard/", consumers.DashboardConsumer.as_asgi()),
    *sagas_ws,
    *dlq_ws,
    *outbox_ws,
    *monitoring_ws,
]
