"""Who is calling the HTTP API, and what they may do: verified identities with scopes.

Reads (the audit trail, excerpts, approvals, the dashboard) need the ``read`` scope and
approve/reject the ``approve`` scope, as soon as any identity source is configured:

- a token per person (``api_tokens``: name -> sha256 of the token, scopes): identity ``token:<name>``;
- a header set by a trusted authenticating proxy (oauth2-proxy, an ingress with OIDC),
  honoured only from ``trusted_proxies`` addresses: identity ``proxy:<value>``;
- the shared ``api_token``: ``read`` only, never an approver (it names nobody);
- Slack (later): ``slack:<team>/<user>``, verified by Slack's request signature.

A token arrives as ``Authorization: Bearer`` or as the ``medic_session`` cookie that the
dashboard's sign-in sets (HttpOnly, SameSite=Strict), so the browser pages work too.
``/healthz``, ``/readyz``, ``/metrics``, webhooks (signed) and the sandboxes stay open.

With no source configured the API is open, as ``medic run`` on 127.0.0.1 is meant to be,
and an approval records the typed name as ``unverified``: every recorded approver either
carries its source (``token:alice``) or is visibly unverified.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Iterable, Mapping
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from medic.boundary import has_control_characters

SESSION_COOKIE = "medic_session"
MAX_SUBJECT = 200


class Scope(StrEnum):
    READ = "read"
    APPROVE = "approve"


class IdentitySource(StrEnum):
    TOKEN = "token"  # noqa: S105 - the name of an identity source, not a secret
    PROXY = "proxy"
    SHARED_TOKEN = "shared-token"  # noqa: S105 - likewise
    SLACK = "slack"
    UNVERIFIED = "unverified"


class Identity(BaseModel):
    """A caller the system verified (or, in open mode, one it could not)."""

    model_config = ConfigDict(frozen=True)

    source: IdentitySource
    subject: str = Field(min_length=1, max_length=MAX_SUBJECT)
    scopes: frozenset[Scope] = frozenset()

    @property
    def principal(self) -> str:
        """How the audit trail names this caller: ``<source>:<subject>``, e.g. ``token:alice``."""
        return f"{self.source.value}:{self.subject}"

    @property
    def verified(self) -> bool:
        return self.source is not IdentitySource.UNVERIFIED

    def may(self, scope: Scope) -> bool:
        return scope in self.scopes


def valid_subject(value: str) -> bool:
    return 0 < len(value) <= MAX_SUBJECT and not has_control_characters(value) and value == value.strip()


class PersonalToken(BaseModel):
    """One person's API token, kept as its SHA-256 (``sha256``) or, less well, in clear (``token``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    token: SecretStr | None = None
    scopes: frozenset[Scope] = frozenset({Scope.READ, Scope.APPROVE})

    @model_validator(mode="after")
    def _one_form(self) -> PersonalToken:
        if (self.sha256 is None) == (self.token is None):
            raise ValueError("give exactly one of sha256 (preferred) or token")
        return self

    def digest(self) -> str:
        if self.sha256 is not None:
            return self.sha256
        assert self.token is not None
        return token_digest(self.token.get_secret_value())


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class AccessPolicy:
    """Built once from settings; answers "who is this request?" from its headers and peer."""

    def __init__(
        self,
        *,
        personal: Mapping[str, PersonalToken] = {},
        shared_token: SecretStr | None = None,
        proxy_header: str | None = None,
        trusted_proxies: Iterable[str] = (),
        proxy_scopes: Iterable[Scope] = (Scope.READ, Scope.APPROVE),
    ) -> None:
        for name in personal:
            if not valid_subject(name):
                raise ValueError(f"api_tokens: {name!r} is not a usable name (control characters?)")
        self._by_digest = {entry.digest(): (name, entry.scopes) for name, entry in personal.items()}
        self._shared = token_digest(shared_token.get_secret_value()) if shared_token else None
        self._proxy_header = proxy_header.lower() if proxy_header else None
        self._proxies = [ipaddress.ip_network(p.strip(), strict=False) for p in trusted_proxies if p.strip()]
        if self._proxy_header and not self._proxies:
            raise ValueError("proxy_identity_header needs trusted_proxies (which addresses may set it)")
        self._proxy_scopes = frozenset(proxy_scopes)

    @property
    def enforced(self) -> bool:
        return bool(self._by_digest or self._shared or self._proxy_header)

    def identify(
        self, headers: Mapping[str, str], cookies: Mapping[str, str], peer: str | None
    ) -> Identity | None:
        """The verified caller, or None (no or wrong credentials). ``headers`` keys are lower case."""
        token = _bearer(headers.get("authorization")) or cookies.get(SESSION_COOKIE)
        if token:
            return self.identify_token(token)
        if self._proxy_header and self._from_trusted_proxy(peer):
            value = headers.get(self._proxy_header, "")
            if valid_subject(value):
                return Identity(source=IdentitySource.PROXY, subject=value, scopes=self._proxy_scopes)
        return None

    def identify_token(self, token: str) -> Identity | None:
        digest = token_digest(token)
        for known, (name, scopes) in self._by_digest.items():
            if hmac.compare_digest(known, digest):
                return Identity(source=IdentitySource.TOKEN, subject=name, scopes=scopes)
        if self._shared is not None and hmac.compare_digest(self._shared, digest):
            return Identity(
                source=IdentitySource.SHARED_TOKEN, subject="api_token", scopes=frozenset({Scope.READ})
            )
        return None

    def _from_trusted_proxy(self, peer: str | None) -> bool:
        if not peer:
            return False
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        return any(address in network for network in self._proxies)


def _bearer(value: str | None) -> str | None:
    if not value or not value.startswith("Bearer "):
        return None
    token = value[len("Bearer ") :].strip()
    return token or None


def unverified(name: str) -> Identity:
    """Open mode: the typed name, marked as such (refused if it holds control characters)."""
    if not valid_subject(name):
        raise ValueError("a name without control characters, at most 200 characters")
    return Identity(source=IdentitySource.UNVERIFIED, subject=name, scopes=frozenset(Scope))
