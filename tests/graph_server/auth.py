"""Fake Entra ID: app registrations, OIDC discovery, the client-credentials token endpoint, and the
bearer-token check Graph does on every request."""

from __future__ import annotations

import base64
import secrets
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa

from . import jwt
from .errors import EntraError, GraphError, unauthenticated

GRAPH_AUDIENCE = "https://graph.microsoft.com"
GRAPH_SCOPE = f"{GRAPH_AUDIENCE}/.default"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass(eq=False)
class App:
    """An app registration with its credentials, granted application roles and mailbox scope."""

    client_id: str
    secret: str | None
    roles: tuple[str, ...]
    # Lower-case UPNs the app may reach in Exchange (RBAC for Applications); None: every mailbox.
    mailboxes: frozenset[str] | None
    # Certificate thumbprints (upper-case hex, SHA-1 and SHA-256) -> public key, None when only the
    # thumbprint was registered (the signature then goes unchecked).
    certificates: dict[str, rsa.RSAPublicKey | None] = field(default_factory=dict)
    object_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    # Tokens issued before this epoch are refused (revoke_tokens).
    token_epoch: int = 0
    # The Outlook client of the tests: not recorded, never faulted, acts as the mailbox owner.
    is_outlook: bool = False

    def may_reach(self, upn: str) -> bool:
        return self.mailboxes is None or upn.lower() in self.mailboxes


@dataclass(frozen=True)
class Caller:
    """Who a Graph request comes from, after the bearer token was checked."""

    app: App
    roles: frozenset[str]


def _thumbprints(cert_pem: bytes | str) -> tuple[list[str], rsa.RSAPublicKey]:
    cert = x509.load_pem_x509_certificate(cert_pem.encode() if isinstance(cert_pem, str) else cert_pem)
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("Entra accepts RSA certificates only")
    prints = [cert.fingerprint(hashes.SHA1()).hex().upper(), cert.fingerprint(hashes.SHA256()).hex().upper()]
    return prints, key


class Entra:
    """The tenant's directory and token service."""

    def __init__(self, tenant_id: str) -> None:
        self.tenant_id = tenant_id
        self.tenant_guid = str(uuid.uuid5(uuid.NAMESPACE_DNS, tenant_id))
        self.apps: dict[str, App] = {}
        self.token_lifetime = 3599
        self._key = secrets.token_bytes(32)

    def add_app(
        self,
        client_id: str,
        *,
        secret: str | None = None,
        certificate: bytes | str | None = None,
        certificate_thumbprint: str | None = None,
        roles: Iterable[str] = (),
        mailboxes: Iterable[str] | None = None,
        is_outlook: bool = False,
    ) -> App:
        app = App(
            client_id=client_id,
            secret=secret,
            roles=tuple(roles),
            mailboxes=None if mailboxes is None else frozenset(m.lower() for m in mailboxes),
            is_outlook=is_outlook,
        )
        if certificate is not None:
            prints, key = _thumbprints(certificate)
            for thumbprint in prints:
                app.certificates[thumbprint] = key
        if certificate_thumbprint:
            app.certificates.setdefault(certificate_thumbprint.replace(":", "").upper(), None)
        self.apps[client_id] = app
        return app

    # -- discovery ------------------------------------------------------------------------------

    def known_tenant(self, tenant: str) -> bool:
        return tenant in (self.tenant_id, self.tenant_guid, "organizations", "common")

    def openid_configuration(self, base_url: str, tenant: str) -> dict[str, Any]:
        if not self.known_tenant(tenant):
            raise EntraError(400, "invalid_tenant", 90002, f"Tenant '{tenant}' not found.")
        root = f"{base_url}/{tenant}"
        return {
            "token_endpoint": f"{root}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": f"{base_url}/{tenant}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{base_url}/{self.tenant_guid}/v2.0",
            "request_uri_parameter_supported": False,
            "userinfo_endpoint": f"{base_url}/oidc/userinfo",
            "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{root}/oauth2/v2.0/devicecode",
            "http_logout_supported": True,
            "frontchannel_logout_supported": True,
            "end_session_endpoint": f"{root}/oauth2/v2.0/logout",
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "tid", "roles"],
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
        }

    @staticmethod
    def instance_discovery(base_url: str) -> dict[str, Any]:
        host = base_url.split("://", 1)[1]
        return {
            "tenant_discovery_endpoint": f"{base_url}/common/v2.0/.well-known/openid-configuration",
            "api-version": "1.1",
            "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}],
        }

    # -- token endpoint ---------------------------------------------------------------------------

    def token(self, tenant: str, form_body: bytes, authorization: str | None) -> tuple[App, dict[str, Any]]:
        """Answer a token request or raise EntraError as Entra would."""
        form = {k: v[0] for k, v in parse_qs(form_body.decode("utf-8", "replace")).items()}
        if authorization and authorization.startswith("Basic "):  # client_secret_basic
            user, _, password = base64.b64decode(authorization[6:]).decode().partition(":")
            form.setdefault("client_id", user)
            form.setdefault("client_secret", password)
        if not self.known_tenant(tenant) or tenant in ("common", "organizations"):
            if tenant in ("common", "organizations"):
                raise EntraError(
                    400, "invalid_request", 50059,
                    "No tenant-identifying information found in either the request or implied by any provided "
                    "credentials.",
                )
            raise EntraError(400, "invalid_request", 90002, f"Tenant '{tenant}' not found. Check to make sure you "
                             "have the correct tenant ID and are signing into the correct cloud.")
        if form.get("grant_type") != "client_credentials":
            raise EntraError(400, "unsupported_grant_type", 70003, "The app requested an unsupported grant type.")
        client_id = form.get("client_id", "")
        app = self.apps.get(client_id)
        if app is None:
            raise EntraError(
                400, "unauthorized_client", 700016,
                f"Application with identifier '{client_id}' was not found in the directory '{self.tenant_id}'. "
                "This can happen if the application has not been installed by the administrator of the tenant.",
            )
        scope = form.get("scope", "")
        if scope.split() != [GRAPH_SCOPE]:
            raise EntraError(
                400, "invalid_scope", 1002012,
                f"The provided value for scope {scope} is not valid. Client credential flows must have a scope "
                "value with /.default suffixed to the resource identifier (application ID URI).",
            )
        if "client_assertion" in form:
            self._check_assertion(app, tenant, form)
        elif "client_secret" in form:
            if app.secret is None or not secrets.compare_digest(form["client_secret"], app.secret):
                raise EntraError(
                    401, "invalid_client", 7000215,
                    "Invalid client secret provided. Ensure the secret being sent in the request is the client "
                    f"secret value, not the client secret ID, for a secret added to app '{client_id}'.",
                )
        else:
            raise EntraError(
                401, "invalid_client", 7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            )
        return app, self.issue(app)

    def _check_assertion(self, app: App, tenant: str, form: Mapping[str, str]) -> None:
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise EntraError(400, "invalid_request", 50027, "Invalid client_assertion_type.")
        try:
            header, claims, signing_input, signature = jwt.split(form["client_assertion"])
        except jwt.InvalidToken as err:
            raise EntraError(401, "invalid_client", 50027, f"JWT token is invalid or malformed ({err}).") from err
        thumbprint = None
        for name in ("x5t#S256", "x5t"):
            if name in header:
                thumbprint = jwt.unb64url(header[name]).hex().upper()
                break
        if thumbprint is None or thumbprint not in app.certificates:
            raise EntraError(
                401, "invalid_client", 700027,
                f"The certificate with identifier used to sign the client assertion is not registered on "
                f"application. [Reason - The key was not found., Thumbprint of key used by client: "
                f"'{thumbprint}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see "
                f"configured keys for app Id '{app.client_id}'.]",
            )
        key = app.certificates[thumbprint]
        if key is not None:
            try:
                jwt.verify_rsa(header, signing_input, signature, key)
            except jwt.InvalidToken as err:
                raise EntraError(
                    401, "invalid_client", 700027, "Client assertion failed signature validation."
                ) from err
        now = time.time()
        if claims.get("iss") != app.client_id or claims.get("sub") != app.client_id:
            raise EntraError(401, "invalid_client", 700023, "Client assertion issuer or subject is not the app.")
        if float(claims.get("exp", 0)) < now - 300:
            raise EntraError(401, "invalid_client", 700024, "Client assertion is not within its valid time range.")
        if not str(claims.get("aud", "")).endswith(f"/{tenant}/oauth2/v2.0/token"):
            raise EntraError(
                401, "invalid_client", 700212,
                f"No matching federated identity record found for presented assertion audience "
                f"'{claims.get('aud')}'.",
            )

    def issue(self, app: App) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "aud": GRAPH_AUDIENCE,
            "iss": f"https://sts.windows.net/{self.tenant_guid}/",
            "iat": now,
            "nbf": now,
            "exp": now + self.token_lifetime,
            "app_displayname": app.client_id,
            "appid": app.client_id,
            "appidacr": "1",
            "idtyp": "app",
            "oid": app.object_id,
            "sub": app.object_id,
            "tid": self.tenant_guid,
            "ver": "1.0",
            "uti": secrets.token_urlsafe(16),
            "xms_syncd_epoch": app.token_epoch,
        }
        if app.roles:
            claims["roles"] = list(app.roles)
        token = jwt.encode_hs256(claims, self._key)
        return {
            "token_type": "Bearer",
            "expires_in": self.token_lifetime,
            "ext_expires_in": self.token_lifetime,
            "access_token": token,
        }

    # -- Graph's side -------------------------------------------------------------------------------

    def authenticate(self, authorization: str | None) -> Caller:
        if not authorization:
            raise unauthenticated("Access token is empty.")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise unauthenticated("Access token is empty.")
        try:
            claims = jwt.decode_hs256(token.strip(), self._key)
        except jwt.InvalidToken as err:
            raise unauthenticated("Access token validation failure. Invalid audience.") from err
        if claims.get("aud") != GRAPH_AUDIENCE:
            raise unauthenticated("Access token validation failure. Invalid audience.")
        if float(claims.get("exp", 0)) <= time.time():
            raise unauthenticated("Lifetime validation failed, the token is expired.")
        app = self.apps.get(str(claims.get("appid")))
        if app is None or claims.get("xms_syncd_epoch") != app.token_epoch:
            raise unauthenticated("Access token has been revoked.")
        return Caller(app, frozenset(claims.get("roles", ())))


def require_role(caller: Caller, *roles: str) -> None:
    """403 unless the token carries one of `roles` (the service checks application permissions)."""
    if not caller.roles.intersection(roles):
        raise GraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
