"""The object model the gateways program against; SOAP stays below this line.

`Adapter.logon` gives a `Session`; a session opens `Store`s, a store lists
`Folder`s, and folders answer table queries with `Message` / `CalendarItem`
value objects. Every call returns a Deferred and fails with a
`shared.errors.GroupwareError` subclass, so a gateway maps one set of errors to
its protocol's answers.

One module per job: `adapter` (entry point), `session` (logon and re-logon),
`sieve` (the user's Sieve scripts), `quota` (the user's storage quota), `delivery` (the delivery session), `user`, `store`,
`folder` (the folder itself) with its mixins `tables` (listings and changes),
`mail_items`, `calendar_items`, `publishing` (sharing) and `streams`;
`operations` is the seam they all call the store through.
"""
from shared.items import CalendarItem, Message
from shared.model.adapter import Adapter
from shared.model.delivery import Delivery, DeliveryFolder, DeliveryResult, DeliverySession, Recipient
from shared.model.folder import Folder
from shared.model.session import Session
from shared.model.store import Store
from shared.model.user import UserInfo
from shared.watcher import ChangeWatcher

__all__ = ["Adapter", "Session", "Store", "Folder", "Message", "CalendarItem", "ChangeWatcher", "UserInfo",
           "DeliverySession", "Delivery", "DeliveryFolder", "DeliveryResult", "Recipient"]
