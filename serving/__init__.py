"""Serving the live tasks: the HTTP API (``forkpoint serve``), the read-only registry web UI
and export of the live multi-task model to ONNX (issue 14)."""
