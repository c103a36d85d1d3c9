"""API keys: who is calling, and whether their role and collections allow this request.

Keys are compared in constant time (hmac.compare_digest against every configured key, so the
time taken says nothing about which key came close) and never logged: logs name the key's
`name`. A missing key is 401, a valid key without the role or the collection is 403.
"""

from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass

from rag.api.errors import ApiError
from rag.config import ApiKey

ROLE_RANK = {"read": 0, "write": 1, "admin": 2}
ANONYMOUS = "anonymous"


@dataclass(frozen=True)
class Principal:
    name: str
    role: str
    collections: frozenset[str]

    def may(self, role: str, collection: str | None) -> bool:
        if ROLE_RANK[self.role] < ROLE_RANK[role]:
            return False
        return collection is None or "*" in self.collections or collection in self.collections


class KeyRing:
    def __init__(self, keys: list[ApiKey]) -> None:
        self._keys = [
            (k.key.get_secret_value().encode(), Principal(k.name or f"key-{i + 1}", k.role, frozenset(k.collections)))
            for i, k in enumerate(keys)
        ]

    @property
    def open(self) -> bool:
        """No keys configured: everyone may do everything (the server then binds to loopback only)."""
        return not self._keys

    def identify(self, presented: str | None) -> Principal | None:
        if self.open:
            return Principal(ANONYMOUS, "admin", frozenset({"*"}))
        if not presented:
            return None
        candidate = presented.encode()
        found = None
        for secret, principal in self._keys:
            if hmac.compare_digest(secret, candidate) and found is None:
                found = principal
        return found

    def principal(self, presented: str | None) -> Principal:
        """Who presents this key; 401 when nobody does."""
        principal = self.identify(presented)
        if principal is None:
            raise ApiError(401, "unauthorized", "a valid API key is required (Authorization: Bearer KEY)")
        return principal

    def authorize(self, presented: str | None, role: str, collection: str | None) -> Principal:
        principal = self.principal(presented)
        if not principal.may(role, collection):
            where = f" on collection {collection!r}" if collection is not None else ""
            raise ApiError(403, "forbidden", f"this key may not {role}{where}")
        return principal


def presented_key(authorization: str | None, x_api_key: str | None) -> str | None:
    if authorization and authorization.lower().startswith("bearer "):
        return authorization[7:].strip()
    return x_api_key


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
