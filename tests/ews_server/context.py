"""Who is asking, for which mailbox: logins, impersonation and delegate access."""

from __future__ import annotations

from dataclasses import dataclass

from . import occurrences
from .faults import ItemError, access_denied, item_not_found
from .store import Folder, Login, Mailbox, Store, StoredItem
from .xmlns import Element, local, t


@dataclass
class Context:
    store: Store
    login: Login
    # Set when the request carried an ExchangeImpersonation header the login may use.
    impersonated: Mailbox | None = None

    @property
    def principal(self) -> Mailbox | None:
        """The mailbox the request acts as: the impersonated one, else the login's own."""
        return self.impersonated or self.login.mailbox

    @property
    def actor(self) -> str:
        principal = self.principal
        return principal.display_name if principal else self.login.name

    def may_open(self, mailbox: Mailbox) -> bool:
        if self.impersonated is not None:
            return mailbox is self.impersonated
        return mailbox is self.login.mailbox or self.login.name.lower() in mailbox.delegates

    def folder(self, folder_id: Element) -> Folder:
        """Resolve a t:DistinguishedFolderId or t:FolderId, checking access."""
        if local(folder_id) == "DistinguishedFolderId":
            address = folder_id.findtext(f"{t('Mailbox')}/{t('EmailAddress')}")
            if address:
                mailbox = self.store.mailbox(address)
                if mailbox is None:
                    raise ItemError(
                        "ErrorNonExistentMailbox", "The SMTP address has no mailbox associated with it."
                    )
            elif self.principal is None:
                raise ItemError("ErrorMissingEmailAddress", "The request must specify a mailbox.")
            else:
                mailbox = self.principal
            found = mailbox.folders.get(folder_id.get("Id"))
        else:
            found = self.store.folders.get(folder_id.get("Id"))
        if found is None:
            raise ItemError("ErrorFolderNotFound", "The specified folder could not be found in the store.")
        if not self.may_open(found.mailbox):
            raise access_denied()
        return found

    def item(self, item_id: Element) -> StoredItem:
        """Resolve t:ItemId, t:OccurrenceItemId or t:RecurringMasterItemId, checking access.

        An occurrence or exception comes back as a view: a StoredItem that is not in the store.
        """
        kind = local(item_id)
        if kind == "OccurrenceItemId":
            master = self._stored(item_id.get("RecurringMasterId"))
            return self._occurrence(master, index=int(item_id.get("InstanceIndex")))
        if kind == "RecurringMasterItemId":
            found = self._occurrence_or_stored(item_id.get("OccurrenceId"))
            return self._stored(_master_id(found.id))
        return self._occurrence_or_stored(item_id.get("Id"))

    def _occurrence_or_stored(self, item_id: str) -> StoredItem:
        parsed = occurrences.parse_occurrence_id(item_id)
        if parsed is None:
            return self._stored(item_id)
        master_id, original_start = parsed
        return self._occurrence(self._stored(master_id), original_start=original_start)

    def _occurrence(self, master: StoredItem, **where) -> StoredItem:
        if "Recurrence" not in master.fields:
            raise ItemError("ErrorItemNotFound", "The specified object was not found in the store.")
        occ = occurrences.find(master, **where)
        if occ is None:
            raise ItemError(
                "ErrorCalendarOccurrenceIndexIsOutOfRecurrenceRange",
                "The occurrence index is out of recurrence range.",
            )
        if occ.deleted:
            raise ItemError(
                "ErrorCalendarOccurrenceIsDeletedFromRecurrence",
                "Occurrence with this index was previously deleted from the recurrence.",
            )
        return occurrences.view(master, occ)

    def _stored(self, item_id: str | None) -> StoredItem:
        found = self.store.items.get(item_id or "")
        if found is None:
            raise item_not_found()
        if not self.may_open(found.folder.mailbox):
            raise access_denied()
        return found


def _master_id(occurrence_id: str) -> str:
    parsed = occurrences.parse_occurrence_id(occurrence_id)
    return parsed[0] if parsed else occurrence_id
