"""Serving benchmarks: a simulated ``vllm bench serve`` (clients, metrics, reports)."""
