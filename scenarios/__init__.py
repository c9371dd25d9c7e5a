"""Avalanche harness: task streams through SubTuning and the standard baselines, with the exact
no-forgetting check. Entry points: ``scenarios.runner.run_stream`` and ``forkpoint stream run``
(``scenarios.commands.stream_group``). Kept import-free so ``forkpoint --help`` stays quick.
See docs/scenarios.md."""
