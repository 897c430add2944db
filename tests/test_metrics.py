"""`metrics_listen` on real processes, scraped over HTTP as Prometheus would: the
figures of real IMAP, POP3, CalDAV and LMTP sessions (summed over worker processes),
/healthz, /readyz following the store, and the Grafana dashboard's queries naming
only metrics that exist."""
from __future__ import annotations

import imaplib
import json
import os
import poplib
import smtplib

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from harness import CONFIG_DIR, ServerProcess, StoreProcess
from waiting import scaled, wait_until

WORKERS = [pytest.param({}, id="one-process"),
           pytest.param({"store_workers": "2", "gateway_workers": "2"}, id="workers")]
MESSAGE = b"From: a@example.org\r\nTo: demo@localhost\r\nSubject: counted\r\n\r\nhello\r\n"


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    """Every sample of /metrics: (name, sorted labels) -> value."""
    answer = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=scaled(30))
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/plain")
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(answer.text) for sample in family.samples}


def value(samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.mark.parametrize("workers", WORKERS)
def test_scrape_counts_what_clients_did(tmp_path, workers):
    server = ServerProcess(str(tmp_path / "var"), {"metrics_listen": "127.0.0.1:0", **workers}, demo=True)
    with server:
        port, password = server.port("metrics"), server.demo_password()
        assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=scaled(30)).text == "ok\n"
        ready = requests.get(f"http://127.0.0.1:{port}/readyz", timeout=scaled(30))
        assert (ready.status_code, ready.text) == (200, "ready\n")
        before = scrape(port)

        for _ in range(6):  # with two gateway workers, both take some; the scrape sums them
            client = imaplib.IMAP4("127.0.0.1", server.port("imap"))
            client.login("demo", password)
            client.select("INBOX")
            client.logout()
        client = imaplib.IMAP4("127.0.0.1", server.port("imap"))
        with pytest.raises(imaplib.IMAP4.error):
            client.login("demo", "wrong")
        client.logout()
        with smtplib.LMTP("127.0.0.1", server.port("lmtp"), timeout=scaled(30)) as lmtp:
            lmtp.sendmail("a@example.org", ["demo@localhost", "nobody-here@localhost"], MESSAGE)
        pop = poplib.POP3("127.0.0.1", server.port("pop3"), timeout=scaled(30))
        pop.user("demo")
        pop.pass_(password)
        pop.stat()
        pop.quit()
        dav = requests.request("PROPFIND", f"http://127.0.0.1:{server.port('ical')}/caldav/demo/",
                               auth=("demo", password), headers={"Depth": "1"}, timeout=scaled(30))
        assert dav.status_code == 207

        def counted():
            after = scrape(port)
            grew = {(name, *labels.values()): value(after, name, **labels) - value(before, name, **labels)
                    for name, labels in [
                        ("groupware_connections_total", {"protocol": "imap"}),
                        ("groupware_logins_total", {"protocol": "imap", "outcome": "success"}),
                        ("groupware_logins_total", {"protocol": "imap", "outcome": "bad_credentials"}),
                        ("groupware_logins_total", {"protocol": "pop3", "outcome": "success"}),
                        ("groupware_command_duration_seconds_count", {"protocol": "imap", "command": "SELECT"}),
                        ("groupware_command_duration_seconds_count", {"protocol": "pop3", "command": "STAT"}),
                        ("groupware_command_duration_seconds_count", {"protocol": "caldav", "command": "PROPFIND"}),
                        ("groupware_deliveries_total", {"status": "stored"}),
                        ("groupware_store_call_duration_seconds_count", {"operation": "logon", "outcome": "ok"}),
                    ]}
            wanted = [7, 6, 1, 1, 6, 1, 1, 1]
            return after if list(grew.values())[:8] == wanted and list(grew.values())[8] >= 7 else None
        after = wait_until(counted, timeout=30, message="the scrape does not show what the clients did")
        assert value(after, "groupware_connections_open", protocol="imap") == 0
        assert value(after, "groupware_blob_bytes_written_total", backend="files") >= len(MESSAGE)
        assert value(after, "groupware_db_pool_connections", state="size") > 0
        # Latency buckets are cumulative and end with every observation.
        count = value(after, "groupware_command_duration_seconds_count", protocol="imap", command="SELECT")
        assert value(after, "groupware_command_duration_seconds_bucket", protocol="imap", command="SELECT",
                      le="+Inf") == count
        # A connection held open shows as open.
        held = imaplib.IMAP4("127.0.0.1", server.port("imap"))
        wait_until(lambda: value(scrape(port), "groupware_connections_open", protocol="imap") == 1,
                   message="an open connection is not counted")
        held.logout()

        # Every metric the dashboard asks for is one the server exposes.
        with open(os.path.join(CONFIG_DIR, "grafana", "groupware-dashboard.json"), encoding="utf-8") as fp:
            dashboard = json.load(fp)
        exposed = {name for name, _ in after}
        queried = {word for panel in dashboard["panels"] for target in panel["targets"]
                   for word in __import__("re").findall(r"groupware_[a-z_]+", target["expr"])}
        assert queried and queried <= exposed, queried - exposed
        assert {"groupware_blob_errors_total", "groupware_deliveries_total"} <= queried


def test_readyz_follows_the_store_for_a_gateway_alone(tmp_path):
    socket_path = str(tmp_path / "store" / "server.sock")
    gateway = ServerProcess(str(tmp_path / "imap"), {"server_socket": socket_path, "metrics_listen": "127.0.0.1:0",
                                                     "imaps_listen": ""}, command="imap").start()
    try:
        port = gateway.port("metrics")
        assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=scaled(30)).status_code == 200
        down = requests.get(f"http://127.0.0.1:{port}/readyz", timeout=scaled(60))
        assert down.status_code == 503 and down.text.startswith("not ready: ")
        store = StoreProcess(tmp_path / "store").start()
        try:
            wait_until(lambda: requests.get(f"http://127.0.0.1:{port}/readyz", timeout=scaled(60)).status_code == 200,
                       message="/readyz stayed 503 with the store up")
        finally:
            store.stop()
        wait_until(lambda: requests.get(f"http://127.0.0.1:{port}/readyz", timeout=scaled(60)).status_code == 503,
                   message="/readyz stayed 200 with the store gone")
    finally:
        gateway.stop()


def test_metrics_are_off_by_default_and_a_bare_port_is_loopback(tmp_path):
    server = ServerProcess(str(tmp_path / "var"), demo=True)
    with server:
        assert not any(line.startswith("metrics listening") for line in server.output)
    from shared.metrics import loopback_default
    assert loopback_default("9180") == "127.0.0.1:9180"
    assert loopback_default("[::1]:9180 0.0.0.0:9181") == "[::1]:9180 0.0.0.0:9181"
