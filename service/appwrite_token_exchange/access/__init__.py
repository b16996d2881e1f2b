"""Who may call, and how often: checked before Appwrite is asked anything.

- `origin`: the CSRF header, the Origin allowlist and the CORS headers;
- `client_ip`: the caller's IP through trusted proxies, and the key the per-IP limit counts;
- `session_cookie`: the session read from the httpOnly cookie;
- `fingerprints`: keyed hashes, so no secret becomes a key or a log field;
- `limits`: the IP, session and user rate limits and the rejected-session memory;
- `sequence`: the one admission sequence both routes run, in its order.
"""
