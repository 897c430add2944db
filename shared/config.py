"""Kopano-style configuration: `name = value` lines, `#` comments, defaults.

Every option the suite knows is declared once in `OPTIONS` with its default;
`conf/*.cfg` documents the same names. Values given on the command line with
`--set name=value` override the files, so several instances can run side by
side from one config directory.
"""
from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Option:
    default: str
    file: str  # which conf/ file documents it


def _opts(file: str, **defaults: str) -> dict[str, Option]:
    return {name: Option(value, file) for name, value in defaults.items()}


OPTIONS: dict[str, Option] = {
    **_opts(
        "server.cfg",
        server_socket="%(data_dir)s/server.sock",
        server_listen="",
        server_listen_tls="",
        server_ssl_key_file="",
        server_ssl_cert_file="",
        server_pipe_mode="0660",
        database_engine="sqlite",
        database_path="",
        mysql_host="127.0.0.1",
        mysql_port="3306",
        mysql_user="root",
        mysql_password="",
        mysql_database="groupware",
        mysql_socket="",
        attachment_storage="files",
        attachment_path="",
        attachment_files_fsync="yes",
        user_plugin="db",
        user_plugin_config="",
        session_timeout="300",
        max_soap_size="16M",
        max_message_size="64M",
        inline_source_limit="1M",
        longpoll_max_timeout="300",
        threads="8",
        log_level="info",
        log_file="-",
    ),
    **_opts(
        "ldap.cfg",
        ldap_uri="ldap://localhost:389",
        ldap_starttls="no",
        ldap_tls_cacert_file="",
        ldap_bind_user="",
        ldap_bind_passwd="",
        ldap_network_timeout="10",
        ldap_timeout="10",
        ldap_pool_size="8",
        ldap_search_base="dc=example,dc=org",
        ldap_user_search_filter="(objectClass=inetOrgPerson)",
        ldap_loginname_attribute="uid",
        ldap_emailaddress_attribute="mail",
        ldap_fullname_attribute="cn",
        ldap_user_unique_attribute="entryUUID",
        ldap_user_unique_attribute_type="text",
        ldap_enabled_features_attribute="",
        ldap_disabled_features_attribute="",
        ldap_group_search_filter="(objectClass=groupOfNames)",
        ldap_groupname_attribute="cn",
        ldap_groupmembers_attribute="member",
        ldap_groupmembers_attribute_type="dn",
        ldap_user_memberof_attribute="",
        ldap_login_group="",
        ldap_page_size="500",
    ),
    **_opts(
        "unix.cfg",
        min_user_uid="1000",
        max_user_uid="60000",
        except_user_uids="",
        default_domain="",
        pam_service="groupware",
    ),
    **_opts(
        "gateway.cfg",
        server_connections="8",
        server_blob_files="yes",
        disabled_features="",
        ssl_certificate_file="",
        ssl_private_key_file="",
        disable_plaintext_auth="yes",
        imap_listen="*:143",
        imaps_listen="*:993",
        imap_max_line_length="64k",
        imap_max_literal="64M",
        imap_timeout="1800",
        imap_login_timeout="60",
        imap_index_cache="64M",
        imap_ignore_command_idle="yes",
        pop3_listen="*:110",
        pop3s_listen="*:995",
        pop3_max_line="8192",
        pop3_timeout="600",
        pop3_read_ahead="256k",
        auth_failure_delay="2",
        auth_max_delay="15",
        auth_ban_threshold="20",
        auth_ban_time="3600",
        auth_failure_window="3600",
        auth_guard_max_entries="100000",
        auth_exempt_loopback="yes",
        trusted_networks="",
    ),
    **_opts(
        "ical.cfg",
        ical_listen="*:8080",
        icals_listen="*:8443",
        ical_plaintext_auth="no",
        ical_max_request_size="10M",
        ical_session_expiry="300",
        ical_threads="8",
        ical_retry_after="30",
    ),
}

_LINE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")
_SIZE = re.compile(r"^\s*(\d+)\s*([kmgKMG]?)[bB]?\s*$")
_TRUE = {"yes", "true", "on", "1"}
_FALSE = {"no", "false", "off", "0", ""}


class ConfigError(ValueError):
    pass


def parse_config_text(text: str, origin: str = "<config>") -> dict[str, str]:
    """Parse `name = value` lines; blank lines and `#`/`;` comments are skipped."""
    values: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        match = _LINE.match(line)
        if not match:
            raise ConfigError(f"{origin}:{number}: expected 'name = value'")
        values[match.group(1)] = match.group(2)
    return values


def parse_overrides(pairs: Iterable[str]) -> dict[str, str]:
    """Turn `--set name=value` arguments into a mapping."""
    values: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"--set expects name=value, got {pair!r}")
        values[name.strip()] = value.strip()
    return values


class Config:
    """Effective option values: defaults < config files < overrides."""

    def __init__(self, values: Mapping[str, str] | None = None, data_dir: str = "var") -> None:
        self.data_dir = os.path.abspath(data_dir)
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
                    with open(path, encoding="utf-8") as fp:
                        values.update(parse_config_text(fp.read(), path))
        # Kopano's user_plugin_config: the directory options from a file of their own.
        plugin_config = (overrides or {}).get("user_plugin_config") or values.get("user_plugin_config")
        if plugin_config:
            path = os.path.join(config_dir or ".", plugin_config)
            with open(path, encoding="utf-8") as fp:
                values.update(parse_config_text(fp.read(), path))
        values.update(overrides or {})
        return cls(values, data_dir)

    def get(self, name: str) -> str:
        if name not in self._values:
            raise KeyError(f"unknown config option {name!r}")
        return self._values[name].replace("%(data_dir)s", self.data_dir)

    def get_int(self, name: str) -> int:
        value = self.get(name)
        try:
            return int(value, 0) if value.startswith("0o") else int(value)
        except ValueError:
            raise ConfigError(f"{name}: expected a number, got {value!r}") from None

    def get_bool(self, name: str) -> bool:
        value = self.get(name).lower()
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        raise ConfigError(f"{name}: expected yes or no, got {value!r}")

    def get_size(self, name: str) -> int:
        """A byte count such as `16M`, `512k` or `1048576`."""
        value = self.get(name)
        match = _SIZE.match(value)
        if not match:
            raise ConfigError(f"{name}: expected a size like 16M, got {value!r}")
        unit = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}[match.group(2).lower()]
        return int(match.group(1)) * unit

    def get_list(self, name: str) -> list[str]:
        return [item for item in re.split(r"[\s,]+", self.get(name)) if item]

    def path(self, name: str, default_name: str) -> str:
        """An option naming a path; empty means `default_name` under the data dir."""
        return self.get(name) or os.path.join(self.data_dir, default_name)

    def as_dict(self) -> dict[str, str]:
        return {name: self.get(name) for name in self._values}
