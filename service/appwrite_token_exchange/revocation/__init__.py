"""Sign-out that takes effect at once: relayed sockets closed on every replica when a session ends.

- `notice`: what a revocation names (a user's sockets, or one session's) and how they end;
- `webhook`: Appwrite's webhook, its signature checked exactly as Appwrite computes it;
- `bus`: the revocation passed to every replica through Redis pub/sub;
- `revoker`: a revocation applied to this process's sockets and to the shared state;
- `routes`: the webhook route and the app's internal kick routes.
"""
