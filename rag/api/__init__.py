"""The HTTP API (FastAPI): `create_app(settings)`; `rag serve` runs it with uvicorn."""

from rag.api.app import create_app

__all__ = ["create_app"]
