"""Listen addresses and the store address as every service reads them from the config."""
import socket

import pytest

from shared.config import ConfigError
from shared.endpoints import (
    ListenAddress, StoreAddress, parse_address, parse_listen, parse_store_address, unix_description,
)
from shared.listeners import Listeners


def test_addresses_and_lists():
    assert parse_address("*:143") == ("", 143)
    assert parse_address(":110") == ("", 110)
    assert parse_address("127.0.0.1:1143") == ("127.0.0.1", 1143)
    assert parse_address("[::1]:993") == ("::1", 993)
    assert parse_listen("*:143 127.0.0.1:1143, [::1]:143") == [("", 143), ("127.0.0.1", 1143), ("::1", 143)]
    assert parse_listen("") == []


@pytest.mark.parametrize("bad", ["143", "host:", "host:port", "*:65536", "*:-1"])
def test_bad_addresses_are_config_errors(bad):
    with pytest.raises(ConfigError):
        parse_address(bad)


def test_descriptions_escape_colons_as_twisted_reads_them():
    from twisted.internet import reactor
    from twisted.internet.endpoints import serverFromString

    assert ListenAddress("", 143).description() == "tcp:143"
    v6 = ListenAddress("::1", 993).description()
    assert v6 == r"tcp:993:interface=\:\:1"
    assert serverFromString(reactor, v6)._interface == "::1"
    unix = unix_description(r"/run/gw:a\b.sock", 0o660)
    assert unix == r"unix:address=/run/gw\:a\\b.sock:mode=660:lockfile=0"
    endpoint = serverFromString(reactor, unix)
    assert (endpoint._address, endpoint._mode, endpoint._wantPID) == (r"/run/gw:a\b.sock", 0o660, False)


@pytest.mark.parametrize("value, expected", [
    ("/var/lib/groupware/server.sock", StoreAddress(path="/var/lib/groupware/server.sock")),
    ("unix:/run/a:b.sock", StoreAddress(path="/run/a:b.sock")),
    ("tcp:store.example.org:236", StoreAddress(host="store.example.org", port=236)),
    ("tls:[2001:db8::1]:237:ca=/etc/ca.pem", StoreAddress(host="2001:db8::1", port=237, tls=True,
                                                          ca_file="/etc/ca.pem")),
])
def test_store_addresses(value, expected):
    assert parse_store_address(value) == expected


@pytest.mark.parametrize("bad", ["tcp:host", "tcp::80", "tcp:host:port", "tls:host:1:bogus=1",
                                 "tcp:host:1:ca=/x", "tcp:[::1:80"])
def test_bad_store_addresses_name_the_option(bad):
    with pytest.raises(ConfigError, match="^server_socket: "):
        parse_store_address(bad)


def test_a_port_in_use_fails_the_start_at_once():
    from twisted.internet import reactor
    from twisted.internet.error import CannotListenError
    from twisted.internet.protocol import Factory

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        listeners = Listeners(reactor)
        listeners.tcp("imap", f"127.0.0.1:0 127.0.0.1:{port}", Factory())
        failures = []
        listeners.opened().addErrback(failures.append)
        # Already failed: no reactor turn was needed to find out.
        assert len(failures) == 1 and failures[0].check(CannotListenError)
        assert "Address already in use" in failures[0].getErrorMessage()
        assert [line.startswith("imap listening on 127.0.0.1:") for line in listeners.lines()] == [True]
        listeners.stop()
