"""An EWS SOAP server that answers like Exchange 2016, for testing syncd's Exchange connector through
exchangelib over real HTTP on 127.0.0.1 (no patching of exchangelib).

    with EwsServer() as server:
        server.add_mailbox("user@example.com", "secret")
        config = Configuration(service_endpoint=server.url, credentials=Credentials("user@example.com", "secret"),
                               auth_type=BASIC, version=Version(build=Build(15, 1, 2507, 6)))
        account = Account("user@example.com", config=config, autodiscover=False, access_type=DELEGATE)
        ...
        assert server.response_errors == []   # every response validated against messages.xsd

Answers ConvertId, GetFolder, SyncFolderItems, GetItem, CreateItem, UpdateItem, DeleteItem and FindItem
(shallow, CalendarView or IndexedPageItemView); any other operation is a loud SOAP fault. Every request
body is validated (ErrorSchemaValidation as Exchange sends it). Items are kept as EWS XML: see
`EwsServer.item()`, `.items()`, and `.edit_item()`, `.modify_occurrence()`, `.delete_occurrence()` to act
as a user in Outlook; `.busy()`, `.unauthorized()`, `.inject()`, `.reject_login()` to inject failures.
"""

from .faults import ItemError, SoapFault, server_busy
from .server import EwsServer, RequestRecord
from .store import Mailbox, SentMessage, StoredItem

__all__ = [
    "EwsServer",
    "ItemError",
    "Mailbox",
    "RequestRecord",
    "SentMessage",
    "SoapFault",
    "StoredItem",
    "server_busy",
]
