"""Folder properties clients keep (dead properties of calendars) and owner publishing,
through the storage API and through the adapter against a real store server."""
from __future__ import annotations

import time

import pytest

from shared.errors import BadRequest, Forbidden, TooLarge
from adapter_client import logon

pytestmark = pytest.mark.database_engines("sqlite", "mariadb")

ORDER = "{http://apple.com/ns/ical/}calendar-order"


def test_storage_replaces_and_lists_properties_with_limits(st, user):
    fid = st.create_folder(user["store_id"], None, "props", "calendar")["id"]
    st.set_folder_properties(fid, {ORDER: "3", "{urn:x}note": "ünïcode"})
    assert st.folder_properties([fid]) == {fid: {ORDER: "3", "{urn:x}note": "ünïcode"}}
    st.set_folder_properties(fid, {ORDER: "4"})
    assert st.folder_properties([fid, 999999]) == {fid: {ORDER: "4"}}
    with pytest.raises(TooLarge):
        st.set_folder_properties(fid, {ORDER: "x" * (16 * 1024 + 1)})
    with pytest.raises(TooLarge):
        st.set_folder_properties(fid, {f"{{urn:x}}p{i}": "v" for i in range(65)})
    assert st.folder_properties([fid]) == {fid: {ORDER: "4"}}
    st.delete_folder(fid)
    assert st.folder_properties([fid]) == {}


def test_adapter_keeps_properties_and_only_the_owner_changes_them(reactor_thread, adapter):
    alice = logon(reactor_thread, adapter, "alice", "caldav")
    bob = logon(reactor_thread, adapter, "bob", "caldav")

    async def scenario():
        cal = await alice.store().create_folder(f"Props {time.time()}", container_class="calendar")
        await cal.set_properties({ORDER: "2", "{urn:x}ctl": "a\x01b"})
        listed = next(f for f in await alice.store().folders() if f.id == cal.id)
        assert listed.properties == {ORDER: "2", "{urn:x}ctl": "a\x01b"}
        await listed.rename(display_name="Renamed")
        assert listed.properties[ORDER] == "2"
        await cal.set_acl("bob", "lrswipkxte")
        shared = next(f for f in await bob.shared_folders() if f.id == cal.id)
        assert shared.properties[ORDER] == "2"
        with pytest.raises(Forbidden):
            await shared.set_properties({ORDER: "9"})
        await cal.delete()

    reactor_thread.coro(scenario)


def test_only_the_owner_publishes_and_sees_the_secret(reactor_thread, adapter):
    alice = logon(reactor_thread, adapter, "alice", "caldav")
    bob = logon(reactor_thread, adapter, "bob", "caldav")

    async def scenario():
        cal = await alice.store().create_folder(f"Pub {time.time()}", container_class="calendar")
        token = await cal.publish()
        assert len(token) >= 32 and cal.publish_token == token
        listed = next(f for f in await alice.store().folders() if f.id == cal.id)
        assert listed.publish_token == token
        assert (await adapter.read_published_calendar(token))["items"] == []
        await cal.set_acl("bob", "lrswipkxte")
        shared = next(f for f in await bob.shared_folders() if f.id == cal.id)
        assert shared.publish_token is None
        with pytest.raises(Forbidden):
            await shared.publish()
        with pytest.raises(Forbidden):
            await shared.unpublish()
        await cal.unpublish()
        assert next(f for f in await alice.store().folders() if f.id == cal.id).publish_token is None
        mail = await alice.store().create_folder(f"Mail {time.time()}")
        with pytest.raises(BadRequest):
            await mail.publish()
        await mail.delete()
        await cal.delete()

    reactor_thread.coro(scenario)
