"""A user's own Sieve scripts: listSieveScripts, getSieveScript, putSieveScript,
setActiveSieveScript, deleteSieveScript, renameSieveScript (what ManageSieve,
RFC 5804 sections 2.5-2.11, asks of the store). The store keeps text; it does not
parse Sieve."""
from __future__ import annotations

from lxml import etree

from server.soap.context import Call, response
from shared.codec import add, element, field, required


async def list_sieve_scripts(call: Call) -> etree._Element:
    """The user's scripts, and the limits a new one must fit in (ManageSieve's HAVESPACE)."""
    session = call.session()
    scripts = await call.run(call.storage.sieve_scripts, session.user_id)
    out = response("listSieveScripts")
    for name, active in scripts:
        script = element("script")
        add(script, "name", name)
        add(script, "active", active)
        out.append(script)
    add(out, "maxScripts", call.services.limits.max_sieve_scripts)
    add(out, "maxScriptSize", call.services.limits.max_sieve_script_size)
    return out


async def get_sieve_script(call: Call) -> etree._Element:
    session = call.session()
    text = await call.run(call.storage.sieve_script, session.user_id, required(call.body, "name"))
    out = response("getSieveScript")
    add(out, "script", text)
    return out


async def put_sieve_script(call: Call) -> etree._Element:
    """Store (or replace) a script: tooLarge above max_sieve_script_size octets, quota
    beyond max_sieve_scripts scripts, badRequest for a name ManageSieve does not allow."""
    session = call.session()
    limits = call.services.limits
    await call.run(call.storage.put_sieve_script, session.user_id, required(call.body, "name"),
                   required(call.body, "script"), limits.max_sieve_script_size, limits.max_sieve_scripts)
    return response("putSieveScript")


async def set_active_sieve_script(call: Call) -> etree._Element:
    """Make a script the active one; an empty or absent name leaves none active."""
    session = call.session()
    await call.run(call.storage.activate_sieve_script, session.user_id, field(call.body, "name") or None)
    return response("setActiveSieveScript")


async def delete_sieve_script(call: Call) -> etree._Element:
    session = call.session()
    await call.run(call.storage.delete_sieve_script, session.user_id, required(call.body, "name"))
    return response("deleteSieveScript")


async def rename_sieve_script(call: Call) -> etree._Element:
    session = call.session()
    await call.run(call.storage.rename_sieve_script, session.user_id, required(call.body, "name"),
                   required(call.body, "newName"))
    return response("renameSieveScript")
