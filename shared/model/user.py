"""Who is logged on, as the server describes the user: names and protocol switches."""
from __future__ import annotations

from dataclasses import dataclass, field

from lxml import etree

from shared import codec
from shared.features import FEATURES
from shared.model.operations import truthy


@dataclass
class UserInfo:
    name: str
    full_name: str = ""
    email: str = ""
    features: dict[str, bool] = field(default_factory=dict)

    @classmethod
    def from_xml(cls, el: etree._Element | None) -> "UserInfo":
        if el is None:
            return cls("")
        features: dict[str, bool] = {}
        feat = el.find(codec.gw("features"))
        if feat is not None:
            if len(feat):
                # <features><imap>true</imap>...</features>
                for child in feat:
                    if isinstance(child.tag, str):
                        features[etree.QName(child).localname] = truthy(child.text)
            else:
                # "imap pop3": the enabled ones; a known protocol left out is switched off.
                enabled = (feat.text or "").split()
                features = {name: name in enabled for name in FEATURES}
                features.update((name, True) for name in enabled)
        return cls(codec.field(el, "name", "") or "", codec.field(el, "fullName", "") or "",
                   codec.field(el, "email", "") or "", features)
