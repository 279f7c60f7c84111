"""An EWS SOAP server that answers like Exchange, for testing syncd's Exchange connector through
exchangelib over real HTTP. See server.EwsServer."""

from .faults import ItemError, SoapFault, server_busy
from .server import EwsServer, RequestRecord
from .store import Mailbox, SentMessage, StoredItem

__all__ = ["EwsServer", "ItemError", "Mailbox", "RequestRecord", "SentMessage", "SoapFault", "StoredItem",
           "server_busy"]
