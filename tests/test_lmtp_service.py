"""`groupware lmtp` as a process: its listeners (UNIX socket and TCP), trusted networks, the
spool, and a store that is not there answered 451 4.3.0."""
import os
import socket
import stat

import pytest

from harness import ServerProcess, run_command
from shared.config import ConfigError
from shared.endpoints import ListenAddress, parse_sockets
from waiting import scaled, wait_until


def test_listen_values_mix_socket_paths_and_addresses():
    assert parse_sockets("/run/gw/lmtp.sock unix:rel.sock, 127.0.0.1:2003 [::1]:24") == [
        "/run/gw/lmtp.sock", "rel.sock", ListenAddress("127.0.0.1", 2003), ListenAddress("::1", 24)]
    for bad in ("unix:", "2003", "host:port"):
        with pytest.raises(ConfigError):
            parse_sockets(bad, "lmtp_listen")


def talk(sock: socket.socket, data: bytes = b"", until: bytes = b"\r\n") -> bytes:
    if data:
        sock.sendall(data)
    out = b""
    while not out.endswith(until):
        chunk = sock.recv(65536)
        if not chunk:
            break
        out += chunk
    return out


@pytest.fixture
def gateway(tmp_path):
    data_dir = tmp_path / "var"
    data_dir.mkdir()
    socket_path = str(data_dir / "lmtp.sock")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(socket_path)  # left by a process that died: replaced at start
    stale.close()
    (data_dir / "spool").mkdir()
    (data_dir / "spool" / "msg-left-by-a-crash").write_bytes(b"never answered 250")
    proc = ServerProcess(str(data_dir), {"server_socket": str(tmp_path / "no-store.sock"), "log_file": "-",
                                         "lmtp_listen": f"{socket_path} 127.0.0.1:0",
                                         "lmtp_socket_mode": "0660"}, command="lmtp")
    with proc.start():
        yield proc, socket_path


def test_banner_socket_mode_and_greeting_on_both_listeners(gateway):
    proc, socket_path = gateway
    assert f"lmtp listening on {socket_path}\n" in proc.output
    assert stat.S_IMODE(os.stat(socket_path).st_mode) == 0o660
    unix = socket.socket(socket.AF_UNIX)
    unix.settimeout(scaled(30))
    unix.connect(socket_path)
    assert talk(unix).startswith(b"220 ")
    unix.close()
    tcp = socket.create_connection(("127.0.0.1", proc.port("lmtp")), timeout=scaled(30))
    assert talk(tcp).startswith(b"220 ")
    tcp.close()


def test_without_a_store_recipients_are_deferred(gateway):
    proc, _ = gateway
    sock = socket.create_connection(("127.0.0.1", proc.port("lmtp")), timeout=scaled(30))
    talk(sock)
    talk(sock, b"LHLO client.test\r\n", until=b"CHUNKING\r\n")
    assert talk(sock, b"MAIL FROM:<>\r\n").startswith(b"250 ")
    assert talk(sock, b"RCPT TO:<alice@example.org>\r\n") == b"451 4.3.0 Temporary failure, try again later\r\n"
    assert talk(sock, b"NOOP\r\n") == b"250 2.0.0 OK\r\n"
    sock.close()


def test_the_spool_starts_empty(gateway):
    """Messages spooled before a crash were never answered 250: the MTA still has them."""
    proc, _ = gateway
    spool = os.path.join(proc.data_dir, "spool")
    assert os.listdir(spool) == []
    assert stat.S_IMODE(os.stat(spool).st_mode) == 0o700


def test_untrusted_tcp_clients_are_refused(tmp_path):
    proc = ServerProcess(str(tmp_path), {"log_file": "-", "lmtp_listen": "127.0.0.1:0",
                                         "lmtp_trusted_networks": "192.0.2.0/24"}, command="lmtp")
    with proc.start():
        sock = socket.create_connection(("127.0.0.1", proc.port("lmtp")), timeout=scaled(30))
        assert talk(sock).startswith(b"554 5.7.1 ")
        assert wait_until(lambda: sock.recv(10) == b"", timeout=10)
        sock.close()


def test_a_bad_listen_value_stops_the_command(tmp_path):
    result = run_command(["-m", "groupware.cli", "lmtp", "--set", "lmtp_listen=unix:"], tmp_path)
    assert (result.returncode, result.stderr) == (2, "groupware: lmtp_listen: expected unix:PATH, got 'unix:'\n")


def test_serve_leaves_lmtp_out_when_disabled():
    from groupware.serve import enabled_gateways
    from shared.config import Config

    assert "lmtp" in enabled_gateways(Config({}))
    assert "lmtp" not in enabled_gateways(Config({"disabled_features": "lmtp"}))
