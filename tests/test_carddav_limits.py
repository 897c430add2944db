"""`ical_max_vcard_size` and `ical_max_import_objects` bound what a CardDAV PUT may hold."""
from __future__ import annotations

import pytest

from caldav_env import xml
from test_carddav import BOOK, CARD, put, vcard

pytestmark = pytest.mark.gateway_env("caldav", ical_max_vcard_size="64k", ical_max_import_objects="3")


def test_vcard_size_and_count_limits_come_from_the_configuration(env):
    assert put(env, BOOK + "small.vcf", vcard("small", extra="NOTE:" + "x" * 60000 + "\r\n")).status_code == 201
    r = put(env, BOOK + "big.vcf", vcard("big", extra="NOTE:" + "x" * 70000 + "\r\n"))
    assert r.status_code == 413 and xml(r).find(f"{CARD}max-resource-size") is not None
    assert put(env, BOOK, "".join(vcard(f"c{i}") for i in range(3))).status_code in (201, 204)
    r = put(env, BOOK, "".join(vcard(f"c{i}") for i in range(4)))
    assert r.status_code == 413 and xml(r).find(f"{CARD}max-resource-size") is not None
