"""The shared state behind the limits and caches: memory per process, or Redis across replicas.

- `store`: the facade the limits call (State), falling back to memory while Redis is away;
- `admission`: the one question a request asks of it, and the answer;
- `sliding_window`, `lru`, `expiry`: the memory backend's parts;
- `redis_url`, `redis_store`, `traced_redis`: REDIS_URL's topologies, the Redis backend (one round
  trip per question, Lua scripts) and its tracing wrapper.
"""
