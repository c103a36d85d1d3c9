"""What the HTTP backends (a vLLM reranker, an OpenAI-compatible generator) share: the client's
life cycle, httpx's failures mapped onto our error family, and one retry policy bounded by a
deadline."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx
from pydantic import SecretStr
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, stop_before_delay, wait_exponential_jitter

from rag.errors import BackendTimeout, BackendUnavailable, BadBackendResponse


def bearer(api_key: SecretStr | None) -> dict[str, str]:
    """The Authorization header for a key, or no header."""
    return {} if api_key is None else {"Authorization": f"Bearer {api_key.get_secret_value()}"}


@contextmanager
def backend_errors(who: str) -> Iterator[None]:
    """Turn httpx's transport failures into BackendTimeout / BackendUnavailable naming `who`."""
    try:
        yield
    except httpx.TimeoutException:
        raise BackendTimeout(f"{who}: timed out") from None
    except httpx.TransportError as exc:
        raise BackendUnavailable(f"{who} unreachable: {exc}") from None


def check_status(response: httpx.Response, who: str) -> None:
    """5xx is the server's trouble (worth a retry); 4xx is ours (it is not)."""
    if response.status_code >= 500:
        raise BackendUnavailable(f"{who}: HTTP {response.status_code}")
    if response.status_code >= 400:
        if not response.is_closed:
            response.read()
        raise BadBackendResponse(f"{who}: HTTP {response.status_code}: {response.text[:200]}")


def retrying(retries: int, within_s: float) -> Retrying:
    """Retry connection errors, timeouts and 5xx with backoff and jitter; never sleep past the
    deadline, and re-raise the last real error so the caller sees what went wrong."""
    return Retrying(
        stop=stop_after_attempt(retries + 1) | stop_before_delay(within_s),
        wait=wait_exponential_jitter(initial=0.1, max=2.0),
        retry=retry_if_exception_type((BackendUnavailable, BackendTimeout)),
        reraise=True,
    )


class HttpBackend:
    """An httpx client made on first use by `_new_client`; one handed in is used as is and never
    closed here. `who` names the server in every error."""

    who = "backend"

    def __init__(self, client: httpx.Client | None) -> None:
        self._client = client
        self._owns_client = client is None

    def _new_client(self) -> httpx.Client:
        raise NotImplementedError

    def warm_up(self) -> None:
        if self._client is None:
            self._client = self._new_client()

    def close(self) -> None:
        if self._client is not None and self._owns_client:
            self._client.close()
        self._client = None

    @property
    def client(self) -> httpx.Client:
        self.warm_up()
        assert self._client is not None
        return self._client

    def _probe(self, path: str, timeout: float) -> None:
        """Raise a BackendError unless GET `path` answers with a success status."""
        with backend_errors(self.who):
            response = self.client.get(path, timeout=timeout)
        check_status(response, self.who)
