"""A Microsoft Graph v1.0 and Entra ID stand-in on https://127.0.0.1, for testing syncd's graph
connector through msal and requests over real HTTPS. See README.md for what it serves.

    with GraphServer(tenant_id="tenant-1") as srv:
        srv.add_app("app-1", secret="s3cret")
        srv.add_mailbox("anna@example.com", name="Anna")
        ...
"""

from .server import GraphServer, OutlookSession
from .service import RequestRecord
from .tls import ClientCertificate, client_certificate

__all__ = ["ClientCertificate", "GraphServer", "OutlookSession", "RequestRecord", "client_certificate"]
