"""The public paths the service answers on (the routes are added by app.create_app)."""

TOKEN_PATH = "/v1/realtime/token"  # noqa: S105 - a route, not a secret
RELAY_PATH = "/v1/realtime"
