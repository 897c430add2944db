"""The fixtures test modules share: the reactor thread, databases, a directory other system
accounts may enter, store servers and the gateway environments.

Two markers choose what a module (or a test) gets:
- `database_engines("sqlite", "mariadb")`: tests that use a store (`env`, `st`, `database_options`)
  run once per engine, one module-scoped server per engine; without it, on SQLite alone.
- `gateway_env("imap" | "pop3" | "caldav", tls=..., users=..., environment=..., **options)`: what `env`
  starts (`environment`: variables for the IMAP server process).
"""
from __future__ import annotations

import os
import secrets
import shutil
import tempfile

import pytest

import caldav_env
import imap_env
import pop3_env
from adapter_client import make_adapter, start_store_server
from certificates import self_signed_certificate
from harness import StoreProcess, mariadb_url, mysql_options, throwaway_mariadb_database
from reactor_thread import ReactorThread, start_reactor_thread
from s3_server import S3Server

ENGINES = ("sqlite", "mariadb")
# The modules that take longest, measured; when modules run side by side (`make test`), they
# are handed out first, since one begun last would still run long after the others are done.
LONGEST_MODULES = (
    "test_crash_atomic.py", "test_caldav_expansion.py", "test_moving.py", "test_cli_sieve.py", "test_caldav.py", "test_lmtp_delivery.py",
    "test_imap.py", "test_crash_safety.py", "test_admin_status_folders.py", "test_pop3.py", "test_users_ldap.py",
    "test_managesieve.py", "test_web_workers.py", "test_concurrency.py", "test_storage.py",
    "test_store_failover.py", "test_blob_migrate.py", "test_blob_encryption_server.py", "test_imap_quota.py",
    "test_caldav_quota.py", "test_caldav_scheduling.py", "test_acl_server.py", "test_acl.py",
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "database_engines(*engines): the engines (sqlite, mariadb) a test's store "
                                       "runs on; SQLite alone without it")
    config.addinivalue_line("markers", "gateway_env(kind, tls=False, users=None, environment=None, **options): the gateway "
                                       "environment (imap, pop3, caldav) the `env` fixture starts")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Always parametrized (even for one engine) so that every test of a module shares the
    # module's server for an engine.
    if "database_engine" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("database_engines")
        engines = marker.args if marker else ENGINES[:1]
        assert set(engines) <= set(ENGINES), engines
        metafunc.parametrize("database_engine", engines, scope="module", indirect=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """In a worker of pytest-xdist (`make test`), the modules in the order they are handed out:
    LONGEST_MODULES first, then the others by their number of tests, most first (as pytest-xdist
    orders them on its own, which `--no-loadscope-reorder` leaves to this hook). A module's
    own tests keep their order."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return
    modules: dict[str, list[pytest.Item]] = {}
    for item in items:
        modules.setdefault(item.path.name, []).append(item)

    def turn(name: str) -> tuple[int, int]:
        if name in LONGEST_MODULES:
            return 0, LONGEST_MODULES.index(name)
        return 1, -len(modules[name])
    items[:] = [item for name in sorted(modules, key=turn) for item in modules[name]]


# -- the reactor ------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def reactor_thread() -> ReactorThread:
    return start_reactor_thread()


# -- databases ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def database_engine(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def mariadb_database():
    """The name of a fresh MariaDB database for this module, dropped afterwards."""
    with throwaway_mariadb_database() as name:
        yield name


@pytest.fixture(scope="module")
def mysql_url(mariadb_database: str) -> str:
    return mariadb_url(mariadb_database)


@pytest.fixture(scope="module")
def database_options(request: pytest.FixtureRequest, database_engine: str) -> dict[str, str]:
    """Server options that put the store on the engine under test (SQLite is the default)."""
    if database_engine == "sqlite":
        return {}
    return mysql_options(request.getfixturevalue("mariadb_database"))


@pytest.fixture(scope="module")
def st(request: pytest.FixtureRequest, database_engine: str, tmp_path_factory):
    """The storage API on the engine under test, migrated, with file blobs."""
    from server.blobs import FileBlobStore
    from server.storage import Storage

    tmp = tmp_path_factory.mktemp("store-" + database_engine)
    url = ("sqlite:///" + str(tmp / "store.db") if database_engine == "sqlite"
           else request.getfixturevalue("mysql_url"))
    storage = Storage(url, FileBlobStore(str(tmp / "blobs"), fsync=False))
    storage.migrate()
    storage.backend = database_engine
    yield storage
    storage.close()


@pytest.fixture
def user(st):
    return st.create_user("u" + secrets.token_hex(4), "hash", "Full Name", "a@example.com")


@pytest.fixture(scope="module")
def open_dir():
    """A temporary directory other system accounts (Postfix's daemons, a delivery agent's uid)
    may enter, which pytest's own under the root user's directory are not; removed afterwards."""
    path = tempfile.mkdtemp(prefix="gw-open-")
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


# -- object storage -----------------------------------------------------------------------------

@pytest.fixture(scope="session")
def s3_server():
    """A real S3 API (moto's server, tests/s3_server.py) on a loopback port for the whole run.
    A test that stops it starts its own S3Server instead."""
    with S3Server() as server:
        yield server


@pytest.fixture(scope="module")
def s3_options(s3_server: S3Server) -> dict[str, str]:
    """Store server options that put blobs in a fresh bucket of `s3_server`."""
    return s3_server.options(s3_server.new_bucket())


# -- the store server alone ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def store_options() -> dict[str, str]:
    """Options for this module's `server`; a module overrides this fixture to change them."""
    return {}


@pytest.fixture(scope="module")
def server(store_options: dict[str, str], tmp_path_factory):
    """The store server alone, with alice and bob (harness.USERS), for SOAP tests."""
    with StoreProcess(tmp_path_factory.mktemp("store"), store_options) as proc:
        yield proc


@pytest.fixture(scope="module")
def store_server(tmp_path_factory):
    """The store server alone with the adapter tests' users (adapter_client.STORE_USERS)."""
    with start_store_server(str(tmp_path_factory.mktemp("store"))) as srv:
        yield srv


@pytest.fixture
def adapter(reactor_thread, store_server):
    a = make_adapter(reactor_thread, store_server)
    yield a
    reactor_thread.call(a.close)


# -- gateway environments -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def env(request: pytest.FixtureRequest, reactor_thread, database_options, tmp_path_factory):
    """The gateway environment the module's `gateway_env` marker names, on the engine under test."""
    marker = request.node.get_closest_marker("gateway_env")
    if marker is None:
        raise pytest.UsageError(f"{request.node.name} uses `env` without a gateway_env marker")
    kind, = marker.args
    options = dict(marker.kwargs)
    tls, users = options.pop("tls", False), options.pop("users", None)
    environment = options.pop("environment", None)
    if environment and kind != "imap":
        raise pytest.UsageError(f"gateway_env: environment= is taken by the imap environment only, not {kind}")
    directory = tmp_path_factory.mktemp(kind)
    options.update(database_options)
    if tls:
        cert, key = self_signed_certificate(directory)
        options.update(ssl_certificate_file=cert, ssl_private_key_file=key)
    if kind == "imap":
        running = imap_env.running(reactor_thread, directory, options, environment)
    elif kind == "pop3":
        running = pop3_env.running(reactor_thread, directory, options)
    elif kind == "caldav":
        running = caldav_env.running(directory, options, users)
    else:
        raise pytest.UsageError(f"no gateway environment {kind!r}")
    with running as e:
        yield e


@pytest.fixture(scope="module")
def slapd(tmp_path_factory):
    """A private slapd (tests/slapd_harness.py) with the OpenLDAP and AD-style trees loaded."""
    from slapd_harness import Slapd, ensure_slapd
    ensure_slapd()
    server = Slapd(str(tmp_path_factory.mktemp("slapd"))).start()
    try:
        server.load()
        yield server
    finally:
        server.stop()
