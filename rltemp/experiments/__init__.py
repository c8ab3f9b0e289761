"""Experiments: orchestration above the agents layer — one entry point per distill run (classic,
``policy:`` and ``online:``), parallel execution, benchmark suites, the quickstart, statistics."""
