"""Talking to Appwrite.

- `client`: the HTTP calls (create a JWT, read the account), their errors and the project-level
  misconfigurations they reveal;
- `claims`: a minted token's claims, and its signature checked against the instance keys;
- `guard`: the concurrency bound and the circuit breaker every call goes through;
- `version`: Appwrite's version, asked once and shared by /readyz and the relay.
"""
