"""Kopano-style configuration: `name = value` lines, `#` comments, defaults.

Every option the suite knows is declared once in `OPTIONS` with its default;
`conf/*.cfg` documents the same names. Values given on the command line with
`--set name=value` override the files, so several instances can run side by
side from one config directory.
"""
from __future__ import annotations

import ipaddress
import logging
import os
import pwd
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

log = logging.getLogger(__name__)


def parse_size(value: str) -> int:
    """A byte count such as `16M`, `512k` or `1048576`; ValueError for anything else."""
    match = _SIZE.match(value)
    if not match:
        raise ValueError(f"expected a size like 16M, got {value!r}")
    return int(match.group(1)) * {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[match.group(2).lower()]


@dataclass(frozen=True)
class Option:
    default: str
    file: str = ""  # which conf/ file documents it
    kind: str = "text"  # which typed getter reads it: Config.get_<kind>
    choices: tuple[str, ...] = ()  # allowed values of a choice, schemes of urls
    minimum: int = 0  # smallest number an int option accepts
    maximum: int | None = None  # largest, where something outside the setting caps it


def text(default: str) -> Option:
    return Option(default)


def number(default: str, minimum: int = 0, maximum: int | None = None) -> Option:
    return Option(default, kind="int", minimum=minimum, maximum=maximum)


def size(default: str) -> Option:
    return Option(default, kind="size")


def seconds(default: str) -> Option:
    return Option(default, kind="seconds")


def flag(default: str) -> Option:
    return Option(default, kind="bool")


def choice(default: str, *choices: str) -> Option:
    return Option(default, kind="choice", choices=choices)


def typed(kind: str, default: str = "", *choices: str) -> Option:
    return Option(default, kind=kind, choices=choices)


def _opts(file: str, **options: Option) -> dict[str, Option]:
    return {name: replace(option, file=file) for name, option in options.items()}


# Dovecot's default ssl_cipher_list: no export, anonymous, static-RSA or other weak ciphers.
DEFAULT_CIPHERS = ("ALL:!kRSA:!SRP:!kDHd:!DSS:!aNULL:!eNULL:!EXPORT:!DES:!3DES:!MD5:!PSK:!RC4:!ADH:!LOW@STRENGTH")

OPTIONS: dict[str, Option] = {
    **_opts(
        "server.cfg",
        server_socket=typed("store_address", "%(data_dir)s/server.sock"),
        server_listen=typed("listen"),
        server_listen_tls=typed("listen"),
        server_ssl_key_file=typed("file"),
        server_ssl_cert_file=typed("file"),
        server_pipe_mode=typed("mode", "0660"),
        server_ssl_min_protocol=choice("TLSv1.2", "tlsv1.2", "tlsv1.3"),
        server_ssl_ciphers=text(DEFAULT_CIPHERS),
        database_engine=choice("sqlite", "sqlite", "mysql", "mariadb"),
        database_path=text(""),
        mysql_host=text("127.0.0.1"),
        mysql_port=number("3306", minimum=1),
        mysql_user=text("root"),
        mysql_password=text(""),
        mysql_database=text("groupware"),
        mysql_socket=text(""),
        attachment_storage=choice("files", "files", "database", "db", "s3"),
        attachment_storage_previous=choice("", "", "files", "database", "db", "s3"),
        attachment_path=text(""),
        attachment_files_fsync=flag("yes"),
        attachment_encryption_key_file=text(""),
        attachment_encryption_old_key_files=text(""),
        attachment_s3_hostname=text(""),
        attachment_s3_protocol=choice("https", "https", "http"),
        attachment_s3_uripath=text(""),
        attachment_s3_uristyle=choice("auto", "auto", "path", "virtual"),
        attachment_s3_accesskeyid=text(""),
        attachment_s3_secretaccesskey=text(""),
        attachment_s3_bucketname=text(""),
        attachment_s3_region=text(""),
        attachment_s3_attempts=number("3", minimum=1),
        attachment_s3_timeout=seconds("30"),
        attachment_s3_part_size=size("8M"),
        user_plugin=choice("db", "db", "ldap", "unix"),
        user_plugin_config=text(""),
        session_timeout=number("300"),
        session_max_lifetime=seconds("86400"),
        max_soap_size=size("16M"),
        max_soap_size_before_logon=size("64k"),
        max_message_size=size("64M"),
        max_keywords_per_message=number("100", minimum=1),
        max_folder_depth=number("32", minimum=1),
        max_folder_name_length=number("255", minimum=1, maximum=255),
        max_folders=number("5000", minimum=16),
        max_calendar_import_objects=number("50000", minimum=1),
        max_schedule_recipients=number("100", minimum=1),
        max_freebusy_items=number("10000", minimum=1),
        folder_owner_cache=number("100000", minimum=1),
        group_cache_ttl=seconds("60"),
        max_acl_entries=number("100", minimum=1),
        max_keyword_length=number("100", minimum=1),
        inline_source_limit=size("1M"),
        longpoll_max_timeout=number("300"),
        threads=number("8", minimum=1),
        max_user_threads=number("4"),
        worker_time_limit=number("60"),
        max_search_scan_keys=number("64"),
        shutdown_timeout=number("20"),
        shutdown_grace=number("5"),
        run_as_user=text(""),
        run_as_group=text(""),
        metrics_listen=text(""),
        memory_trim_interval=number("30"),
        user_threads=number("4", minimum=1),
        password_hash_threads=number("0"),
        auth_cache_size=size("0"),
        auth_cache_ttl=seconds("3600"),
        store_workers=number("0"),
        notify_socket_dir=text(""),
        redis_url=typed("redis_url"),
        redis_channel_prefix=text("groupware:"),
        redis_key_prefix=text("groupware:"),
        session_key_file=typed("file"),
        log_level=typed("log_level", "info"),
        log_file=text("-"),
        log_method=choice("file", "file", "syslog"),
        log_format=choice("text", "text", "json"),
        log_syslog_address=text("/dev/log"),
        log_syslog_facility=choice("mail", "mail", "daemon", "user", "local0", "local1", "local2", "local3",
                                   "local4", "local5", "local6", "local7"),
        delivery_uids=typed("uids"),
        delivery_secret_file=typed("file"),
        gateway_uids=typed("uids"),
        gateway_secret_file=typed("file"),
        logon_bans=choice("database", "database", "memory"),
        recipient_delimiter=text("+"),
        delivery_duplicate_window=number("3600"),
        max_deliveries_per_message=number("1000", minimum=1),
        max_sieve_script_size=size("64K"),
        max_sieve_scripts=number("32"),
        sieve_max_nesting=number("32", minimum=1),
        sieve_max_actions=number("32", minimum=1),
        sieve_max_redirects=number("4"),
        sieve_max_steps=number("100000", minimum=1),
        sieve_max_variable_size=size("4k"),
        quota_warn=size("0"),
        quota_soft=size("0"),
        quota_hard=size("0"),
        quota_messages=number("0"),
    ),
    **_opts(
        "ldap.cfg",
        ldap_uri=typed("urls", "ldap://localhost:389", "ldap", "ldaps"),
        ldap_starttls=flag("no"),
        ldap_tls_cacert_file=typed("file"),
        ldap_bind_user=text(""),
        ldap_bind_passwd=text(""),
        ldap_network_timeout=number("10"),
        ldap_timeout=number("10"),
        ldap_pool_size=number("8"),
        ldap_search_base=text("dc=example,dc=org"),
        ldap_user_search_filter=text("(objectClass=inetOrgPerson)"),
        ldap_loginname_attribute=text("uid"),
        ldap_emailaddress_attribute=text("mail"),
        ldap_fullname_attribute=text("cn"),
        ldap_user_unique_attribute=text("entryUUID"),
        ldap_user_unique_attribute_type=choice("text", "text", "binary"),
        ldap_enabled_features_attribute=text(""),
        ldap_disabled_features_attribute=text(""),
        ldap_group_search_filter=text("(objectClass=groupOfNames)"),
        ldap_groupname_attribute=text("cn"),
        ldap_groupmembers_attribute=text("member"),
        ldap_groupmembers_attribute_type=choice("dn", "dn", "text"),
        ldap_user_memberof_attribute=text(""),
        ldap_login_group=text(""),
        ldap_page_size=number("500", minimum=1),
        ldap_quota_warn_attribute=text(""),
        ldap_quota_soft_attribute=text(""),
        ldap_quota_hard_attribute=text(""),
        ldap_quota_multiplier=number("1048576", minimum=1),
    ),
    **_opts(
        "unix.cfg",
        min_user_uid=number("1000"),
        max_user_uid=number("60000"),
        except_user_uids=typed("int_list"),
        default_domain=text(""),
        pam_service=text("groupware"),
    ),
    **_opts(
        "gateway.cfg",
        server_sockets=typed("store_addresses"),
        server_failover_retry=seconds("5"),
        server_connections=number("8", minimum=1),
        server_connections_per_user=number("4"),
        server_logon_connections=number("4", minimum=1),
        gateway_workers=number("0"),
        server_blob_files=flag("yes"),
        disabled_features=text(""),
        ssl_certificate_file=typed("file"),
        ssl_private_key_file=typed("file"),
        ssl_min_protocol=choice("TLSv1.2", "tlsv1.2", "tlsv1.3"),
        ssl_ciphers=text(DEFAULT_CIPHERS),
        disable_plaintext_auth=flag("yes"),
        max_connections_per_ip=number("100"),
        mail_max_userip_connections=number("10"),
        imap_listen=typed("listen", "*:143"),
        imaps_listen=typed("listen", "*:993"),
        imap_haproxy_listen=typed("listen"),
        imaps_haproxy_listen=typed("listen"),
        imap_max_line_length=size("64k"),
        imap_max_literal=size("64M"),
        imap_max_append_messages=number("100", minimum=1, maximum=1000),
        imap_max_append_total=size("256M"),
        imap_compress_level=number("6", minimum=1, maximum=9),
        imap_max_fetch_sections=number("50", minimum=1),
        imap_max_sort_criteria=number("16", minimum=1),
        imap_max_sort_messages=number("500000", minimum=1),
        imap_timeout=number("1800"),
        imap_login_timeout=number("60"),
        imap_index_cache=size("64M"),
        imap_listing_cache=size("32M"),
        imap_recent_folders=number("200000", minimum=1),
        imap_ignore_command_idle=flag("yes"),
        imap_notify_max_mailboxes=number("1000", minimum=1, maximum=10000),
        imap_max_search_contexts=number("10", minimum=0),
        imap_shared_cache=seconds("30"),
        pop3_listen=typed("listen", "*:110"),
        pop3s_listen=typed("listen", "*:995"),
        pop3_haproxy_listen=typed("listen"),
        pop3s_haproxy_listen=typed("listen"),
        pop3_max_line=number("8192"),
        pop3_timeout=number("600"),
        pop3_login_timeout=number("60"),
        pop3_read_ahead=size("256k"),
        auth_failure_delay=seconds("2"),
        auth_max_delay=seconds("15"),
        auth_ban_threshold=number("20"),
        auth_ban_time=seconds("3600"),
        auth_failure_window=seconds("3600"),
        auth_guard_max_entries=number("100000"),
        auth_max_waiting=number("8"),
        auth_exempt_loopback=flag("yes"),
        trusted_networks=typed("networks"),
        haproxy_trusted_networks=typed("networks"),
        haproxy_timeout=seconds("3"),
        haproxy_max_header_size=size("4k"),
        public_hostname=text(""),
        mail_domains=text(""),
        submission_host=text(""),
        submission_port=number("587", maximum=65535),
        submission_tls=choice("starttls", "starttls", "tls"),
        autoconfig_username=choice("localpart", "localpart", "address"),
        web_onboarding=flag("yes"),
        web_session_expiry=seconds("1800"),
        web_download_expiry=seconds("300"),
        web_key_file=typed("file"),
        web_sign_profile=flag("no"),
        web_organization=text(""),
    ),
    **_opts(
        "managesieve.cfg",
        managesieve_listen=typed("listen", "*:4190"),
        managesieves_listen=typed("listen"),
        managesieve_haproxy_listen=typed("listen"),
        managesieves_haproxy_listen=typed("listen"),
        managesieve_max_line_length=size("8k"),
        managesieve_timeout=number("600"),
        managesieve_login_timeout=number("60"),
        managesieve_max_login_commands=number("20", minimum=1),
    ),
    **_opts(
        "ical.cfg",
        ical_listen=typed("listen", "*:8080"),
        icals_listen=typed("listen", "*:8443"),
        ical_haproxy_listen=typed("listen"),
        icals_haproxy_listen=typed("listen"),
        ical_plaintext_auth=flag("no"),
        ical_max_request_size=size("10M"),
        ical_timeout=seconds("60"),
        ical_max_xml_depth=number("32", minimum=4),
        ical_max_xml_elements=number("10000", minimum=16),
        ical_max_import_objects=number("20000"),
        ical_max_vcard_size=size("4M"),
        ical_session_expiry=number("300"),
        ical_session_cache=number("10000", minimum=1),
        ical_threads=number("8", minimum=1),
        ical_threads_per_user=number("4"),
        ical_time_limit=number("60"),
        ical_max_instances=number("100000"),
        ical_max_object_instances=number("100000"),
        ical_max_query_instances=number("10000"),
        ical_min_date_time=typed("utc_datetime", "19000101T000000Z"),
        ical_max_date_time=typed("utc_datetime", "21000101T000000Z"),
        ical_retry_after=number("30"),
        ical_scheduling=flag("yes"),
        ical_max_schedule_attendees=number("100"),
        imip_smtp_host=text(""),
        imip_smtp_port=number("25", maximum=65535),
        imip_smtp_timeout=seconds("30"),
        imip_sender=text(""),
        imip_retries=number("3"),
        imip_retry_delay=seconds("30"),
    ),
    **_opts(
        "lmtp.cfg",
        lmtp_listen=typed("sockets", "%(data_dir)s/lmtp.sock"),
        lmtp_haproxy_listen=typed("listen"),
        lmtp_socket_mode=typed("mode", "0666"),
        lmtp_trusted_networks=typed("networks", "127.0.0.0/8 ::1"),
        lmtp_hostname=text(""),
        lmtp_max_message_size=size("64M"),
        lmtp_max_line_length=size("64k"),
        lmtp_max_recipients=number("100", minimum=1),
        lmtp_timeout=seconds("300"),
        lmtp_max_connections=number("100", minimum=1),
        sieve_script_cache_time=seconds("5"),
        sieve_script_cache_size=size("16M"),
        recipient_cache_time=seconds("5"),
        recipient_cache_size=size("4M"),
        spam_header_name=text("X-Spam-Flag"),
        spam_header_value=text("YES"),
        relay_host=text("localhost"),
        relay_port=number("25", minimum=1),
        relay_timeout=seconds("30"),
        lmtp_apply_imip=flag("no"),
        lmtp_imip_max_size=size("1M"),
    ),
}

# Options of a user plugin's own file are read only when that plugin is chosen.
PLUGIN_FILES = {"ldap": "ldap.cfg", "unix": "unix.cfg"}

_LINE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")
_SIZE = re.compile(r"^\s*(\d+)\s*([kmgKMG]?)[bB]?\s*$")
_UTC_DATETIME = re.compile(r"^\d{8}T\d{6}Z$")
_TRUE = {"yes", "true", "on", "1"}
_FALSE = {"no", "false", "off", "0", ""}


class ConfigError(ValueError):
    """A bad option value (or config line), reported as `<option>: <what is wrong>`."""

    def __init__(self, option: str, problem: str) -> None:
        super().__init__(f"{option}: {problem}")
        self.option = option
        self.problem = problem


def report_config_error(prog: str, err: ConfigError) -> int:
    """What every command does with a ConfigError: one line on stderr, exit code 2."""
    print(f"{prog}: {err}", file=sys.stderr)
    return 2


def parse_config_text(text: str, origin: str = "<config>") -> dict[str, str]:
    """Parse `name = value` lines; blank lines and `#`/`;` comments are skipped."""
    values: dict[str, str] = {}
    for line_number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        match = _LINE.match(line)
        if not match:
            raise ConfigError(f"{origin}:{line_number}", "expected 'name = value'")
        values[match.group(1)] = match.group(2)
    return values


def parse_overrides(pairs: Iterable[str]) -> dict[str, str]:
    """Turn `--set name=value` arguments into a mapping."""
    values: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ConfigError("--set", f"expects name=value, got {pair!r}")
        values[name.strip()] = value.strip()
    return values


def _read_config_file(path: str) -> dict[str, str]:
    with open(path, encoding="utf-8") as fp:
        return parse_config_text(fp.read(), path)


class Config:
    """Effective option values: defaults < config files < overrides.

    Each option is parsed by the getter its `Option.kind` names, so a bad value
    always ends in the same ConfigError however many places read it.
    """

    def __init__(self, values: Mapping[str, str] | None = None, data_dir: str = "var") -> None:
        self.data_dir = os.path.abspath(data_dir)
        self.source: tuple[str | None, str, dict[str, str]] | None = None
        self._values = {name: opt.default for name, opt in OPTIONS.items()}
        for name, value in (values or {}).items():
            if name not in OPTIONS:
                log.warning("unknown config option %r ignored", name)
                continue
            self._values[name] = value

    @classmethod
    def load(cls, config_dir: str | None, data_dir: str,
             overrides: Mapping[str, str] | None = None) -> "Config":
        values: dict[str, str] = {}
        if config_dir:
            for file in sorted({opt.file for opt in OPTIONS.values()}):
                path = os.path.join(config_dir, file)
                if os.path.exists(path):
                    values.update(_read_config_file(path))
        # Kopano's user_plugin_config: the directory options from a file of their own.
        plugin_config = (overrides or {}).get("user_plugin_config") or values.get("user_plugin_config")
        if plugin_config:
            path = os.path.join(config_dir or ".", plugin_config)
            if not os.path.isfile(path):
                raise ConfigError("user_plugin_config", f"no such file: {path!r}")
            values.update(_read_config_file(path))
        values.update(overrides or {})
        cfg = cls(values, data_dir)
        cfg.source = (config_dir, data_dir, dict(overrides or {}))
        return cfg

    def reread(self) -> "Config":
        """The configuration read again from the files (and overrides) it came from
        (SIGHUP); a Config made from values alone reads as itself."""
        if self.source is None:
            return self
        fresh = Config.load(*self.source)
        fresh.check()
        return fresh

    def adopt(self, fresh: "Config", names: Iterable[str]) -> list[str]:
        """Take `names`' values from `fresh` in place, so code that reads this Config
        when it works sees them; the names whose value changed."""
        changed = [name for name in names if self._values[name] != fresh._values[name]]
        for name in changed:
            self._values[name] = fresh._values[name]
        return changed

    def differences(self, fresh: "Config") -> list[str]:
        return [name for name in self._values if self._values[name] != fresh._values.get(name)]

    def check(self) -> None:
        """Parse every typed option that applies, so a bad value stops a command at
        start-up; the options of a user plugin not chosen are left alone."""
        skipped = {file for plugin, file in PLUGIN_FILES.items() if plugin != self.get_choice("user_plugin")}
        for name, option in OPTIONS.items():
            if option.kind != "text" and option.file not in skipped:
                getattr(self, f"get_{option.kind}")(name)

    def get(self, name: str) -> str:
        if name not in self._values:
            raise KeyError(f"unknown config option {name!r}")
        return self._values[name].replace("%(data_dir)s", self.data_dir)

    def _typed(self, name: str, kind: str) -> str:
        declared = OPTIONS[name].kind if name in OPTIONS else None
        if declared != kind:
            raise KeyError(f"config option {name!r} is declared as {declared}, not {kind}")
        return self.get(name)

    def get_int(self, name: str) -> int:
        value = self._typed(name, "int")
        try:
            number = int(value)
        except ValueError:
            raise ConfigError(name, f"expected a number, got {value!r}") from None
        minimum = OPTIONS[name].minimum
        if number < minimum:
            raise ConfigError(name, f"expected at least {minimum}, got {value!r}")
        maximum = OPTIONS[name].maximum
        if maximum is not None and number > maximum:
            raise ConfigError(name, f"expected at most {maximum}, got {value!r}")
        return number

    def get_bool(self, name: str) -> bool:
        value = self._typed(name, "bool").lower()
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        raise ConfigError(name, f"expected yes or no, got {value!r}")

    def get_size(self, name: str) -> int:
        """A byte count such as `16M`, `512k` or `1048576`."""
        value = self._typed(name, "size")
        try:
            return parse_size(value)
        except ValueError:
            raise ConfigError(name, f"expected a size like 16M, got {value!r}") from None

    def get_utc_datetime(self, name: str) -> str:
        """A UTC date-time in iCalendar's basic form (`19000101T000000Z`), upper case; empty: none."""
        value = self._typed(name, "utc_datetime").strip().upper()
        if value and not _UTC_DATETIME.match(value):
            raise ConfigError(name, f"expected a UTC date-time like 19000101T000000Z, got {value!r}")
        return value

    def get_seconds(self, name: str) -> float:
        """A duration in seconds, fractions allowed."""
        value = self._typed(name, "seconds")
        try:
            result = float(value)
        except ValueError:
            raise ConfigError(name, f"expected seconds, got {value!r}") from None
        if not 0 <= result < float("inf"):
            raise ConfigError(name, f"expected seconds, got {value!r}")
        return result

    def get_choice(self, name: str) -> str:
        """One of the option's declared words, lower-cased."""
        value = self._typed(name, "choice").lower()
        choices = OPTIONS[name].choices
        if value not in choices:
            raise ConfigError(name, f"expected one of {', '.join(choices)}, got {value!r}")
        return value

    def get_mode(self, name: str) -> int:
        """File permissions in octal, such as 0660."""
        value = self._typed(name, "mode")
        try:
            mode = int(value, 8)
        except ValueError:
            mode = -1
        if not 0 <= mode <= 0o7777:
            raise ConfigError(name, f"expected an octal mode like 0660, got {value!r}")
        return mode

    def get_int_list(self, name: str) -> list[int]:
        values = self.get_list(name, "int_list")
        try:
            return [int(item) for item in values]
        except ValueError:
            raise ConfigError(name, f"expected numbers, got {self.get(name)!r}") from None

    def get_uids(self, name: str) -> list[int]:
        """System accounts by name or number, as numeric uids."""
        uids = []
        for item in self.get_list(name, "uids"):
            if item.isdigit():
                uids.append(int(item))
                continue
            try:
                uids.append(pwd.getpwnam(item).pw_uid)
            except KeyError:
                raise ConfigError(name, f"no such system user {item!r}") from None
        return uids

    def get_file(self, name: str) -> str | None:
        """A file that must exist; None when the option is empty."""
        value = self._typed(name, "file")
        if not value:
            return None
        if not os.path.isfile(value):
            raise ConfigError(name, f"no such file: {value!r}")
        return value

    def get_secret(self, name: str) -> str | None:
        """The content of a secret file option (stripped); None when the option is empty."""
        path = self.get_file(name)
        if path is None:
            return None
        with open(path, encoding="utf-8", errors="surrogateescape") as fp:
            secret = fp.read().strip()
        if not secret:
            raise ConfigError(name, f"{path} is empty")
        return secret

    def get_networks(self, name: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        """CIDR networks, space- or comma-separated; a bare address is a network of one."""
        networks = []
        for item in self.get_list(name, "networks"):
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError:
                raise ConfigError(name, f"expected networks like 192.0.2.0/24, got {item!r}") from None
        return networks

    def get_urls(self, name: str) -> list[str]:
        """Space-separated URLs with one of the option's schemes; at least one."""
        urls = self.get_list(name, "urls")
        schemes = OPTIONS[name].choices
        if not urls:
            raise ConfigError(name, "expected at least one URL")
        for url in urls:
            if url.partition("://")[0].lower() not in schemes or "://" not in url:
                wanted = " or ".join(f"{scheme}://" for scheme in schemes)
                raise ConfigError(name, f"expected {wanted}, got {url!r}")
        return urls

    def get_redis_url(self, name: str) -> Any:
        """`redis://[[user]:password@]host[:port][/db]`, see server.notify_redis; None when empty."""
        value = self._typed(name, "redis_url")
        if not value:
            return None
        from shared.redisurl import parse_redis_url
        return parse_redis_url(value, name)

    def get_log_level(self, name: str) -> int:
        """A logging level: a name (`info`) or a Kopano number (0-6)."""
        from shared.logging import parse_level
        value = self._typed(name, "log_level")
        try:
            return parse_level(value)
        except ValueError:
            raise ConfigError(name, f"expected debug, info, warning, error or 0-6, got {value!r}") from None

    def get_listen(self, name: str) -> list[Any]:
        """Listen addresses (`*:143 127.0.0.1:1143 [::1]:143`), see shared.endpoints."""
        from shared.endpoints import parse_listen
        return parse_listen(self._typed(name, "listen"), name)

    def get_sockets(self, name: str) -> list[Any]:
        """Listen addresses and UNIX socket paths (`/run/x.sock`, `unix:PATH`), see shared.endpoints."""
        from shared.endpoints import parse_sockets
        return parse_sockets(self._typed(name, "sockets"), name)

    def get_store_address(self, name: str) -> Any:
        """Where the store server is: a socket path, unix:, tcp: or tls:; None when empty."""
        from shared.endpoints import parse_store_address
        value = self._typed(name, "store_address")
        return parse_store_address(value, name) if value else None

    def get_store_addresses(self, name: str) -> list[Any]:
        """Several store server addresses, space-separated (see get_store_address)."""
        from shared.endpoints import parse_store_address
        return [parse_store_address(value, name) for value in self.get_list(name, "store_addresses")]

    def get_list(self, name: str, kind: str | None = None) -> list[str]:
        value = self._typed(name, kind) if kind else self.get(name)
        return [item for item in re.split(r"[\s,]+", value) if item]

    def path(self, name: str, default_name: str) -> str:
        """An option naming a path; empty means `default_name` under the data dir."""
        return self.get(name) or os.path.join(self.data_dir, default_name)

    def as_dict(self) -> dict[str, str]:
        return {name: self.get(name) for name in self._values}
