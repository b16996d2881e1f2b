"""The WebSocket relay, `GET /v1/realtime`: the browser's Realtime socket, authenticated upstream
with the session, so no credential reaches JavaScript.

- `handler`: the route (the handshake, through the admission sequence);
- `upstream`: the socket to Appwrite Realtime;
- `pump`: one relayed socket (frames both ways, session re-checks, shutdown);
- `translate`: the pump for servers that read channels only from the URL (1.5-1.8, 1.9.0);
- `policy`: what a page may send and subscribe to; `php_query`: PHP's query parsing, as Appwrite reads it;
- `slots`: how many sockets a process, user, session and IP may hold.
"""
