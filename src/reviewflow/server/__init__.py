"""The HTTP API (`reviewflow serve`): FastAPI over the same engine and store as the CLI."""

from .app import create_app

__all__ = ["create_app"]
