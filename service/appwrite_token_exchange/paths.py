"""The public paths the service answers on (the routes are added by app.create_app)."""

TOKEN_PATH = "/v1/realtime/token"  # noqa: S105 - a route, not a secret
RELAY_PATH = "/v1/realtime"
# Appwrite's webhook (signed): under the public prefix, since Appwrite calls it from outside.
WEBHOOK_PATH = "/v1/realtime/webhooks/appwrite"
# The app's own sign-out kicks: outside /v1/realtime, which is all the manifests route publicly.
INTERNAL_USER_SOCKETS_PATH = "/internal/v1/users/{userId}/sockets"
INTERNAL_SESSION_SOCKETS_PATH = "/internal/v1/users/{userId}/sessions/{sessionId}/sockets"
