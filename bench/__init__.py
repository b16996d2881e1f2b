"""The benchmark: the exchange side by side with a naive route and the floor, memory flatness, the relay,
and a profile of the hot path. Run `python -m bench` (or `--smoke`); see docs/performance.md."""
