"""The app store: signed app manifests, installations into communities, subscription payments
(``docs/apps.md``)."""

from ioe.zomes.appstore.api import coordinator
from ioe.zomes.appstore.validation import integrity

__all__ = ["coordinator", "integrity"]
