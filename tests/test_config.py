"""Every option has a default, is documented in its conf/ file, and is read back."""
import os
import re

import pytest

from groupware.cli import main as cli_main
from harness import run_command
from shared.config import OPTIONS, PLUGIN_FILES, Config, ConfigError, parse_config_text, parse_overrides

CONF = os.path.join(os.path.dirname(__file__), os.pardir, "conf")


def documented(file):
    with open(os.path.join(CONF, file), encoding="utf-8") as fp:
        return parse_config_text(fp.read(), file)


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_every_option_is_documented_with_its_default(name):
    option = OPTIONS[name]
    values = documented(option.file)
    assert name in values, f"{name} missing from conf/{option.file}"
    assert values[name] == option.default


def test_conf_files_hold_no_unknown_options():
    files = {opt.file for opt in OPTIONS.values()}
    for file in files:
        for name in documented(file):
            assert name in OPTIONS, f"conf/{file} documents unknown option {name}"


def test_shipped_conf_files_load_to_the_defaults(tmp_path):
    cfg = Config.load(CONF, str(tmp_path))
    defaults = Config({}, str(tmp_path))
    assert cfg.as_dict() == defaults.as_dict()


def test_overrides_beat_files(tmp_path):
    (tmp_path / "server.cfg").write_text("# comment\nthreads = 3\nlog_level=debug\n")
    cfg = Config.load(str(tmp_path), str(tmp_path / "data"), parse_overrides(["threads=5"]))
    assert cfg.get_int("threads") == 5
    assert cfg.get("log_level") == "debug"
    assert cfg.get("server_socket") == str(tmp_path / "data" / "server.sock")


def test_value_types(tmp_path):
    cfg = Config({"max_soap_size": "2M", "attachment_files_fsync": "no",
                  "disabled_features": "pop3, imap"}, str(tmp_path))
    assert cfg.get_size("max_soap_size") == 2 * 1024 * 1024
    assert cfg.get_bool("attachment_files_fsync") is False
    assert cfg.get_list("disabled_features") == ["pop3", "imap"]
    with pytest.raises(ConfigError):
        Config({"threads": "many"}, str(tmp_path)).get_int("threads")
    with pytest.raises(ConfigError):
        Config({"max_soap_size": "lots"}, str(tmp_path)).get_size("max_soap_size")


def test_malformed_lines_and_overrides_are_errors():
    with pytest.raises(ConfigError, match="line|:2"):
        parse_config_text("a = 1\nthis is not an option\n", "x.cfg")
    with pytest.raises(ConfigError):
        parse_overrides(["no-equals-sign"])


# -- bad values: one ConfigError naming the option, reported by every command -----------------

# A bad value for each kind of option, and what is wrong with it ({choices}: the option's own).
BAD_VALUES = {
    "int": ("many", "expected a number, got 'many'"),
    "size": ("lots", "expected a size like 16M, got 'lots'"),
    "seconds": ("soon", "expected seconds, got 'soon'"),
    "bool": ("maybe", "expected yes or no, got 'maybe'"),
    "choice": ("bogus", "expected one of {choices}, got 'bogus'"),
    "mode": ("rw-rw----", "expected an octal mode like 0660, got 'rw-rw----'"),
    "int_list": ("1000 x", "expected numbers, got '1000 x'"),
    "file": ("/nonexistent/file.pem", "no such file: '/nonexistent/file.pem'"),
    "networks": ("10.0.0.0/33", "expected networks like 192.0.2.0/24, got '10.0.0.0/33'"),
    "urls": ("http://dc1", "expected ldap:// or ldaps://, got 'http://dc1'"),
    "log_level": ("loud", "expected debug, info, warning, error or 0-6, got 'loud'"),
    "listen": ("143", "expected host:port, got '143'"),
    "sockets": ("unix:", "expected unix:PATH, got 'unix:'"),
    "store_address": ("tcp:host", "expected tcp:host:port, got 'tcp:host'"),
    "store_addresses": ("/run/a.sock tls:host", "expected tls:host:port, got 'tls:host'"),
    "uids": ("postfix-nonexistent", "no such system user 'postfix-nonexistent'"),
    "utc_datetime": ("2100-01-01", "expected a UTC date-time like 19000101T000000Z, got '2100-01-01'"),
    "redis_url": ("redis://cache:port", "expected redis://host[:port][/db], got 'redis://cache:port'"),
}
TYPED = sorted(name for name, option in OPTIONS.items() if option.kind != "text")
PLUGIN_OF_FILE = {file: plugin for plugin, file in PLUGIN_FILES.items()}


def bad_setting(name):
    """--set arguments that give `name` a bad value (choosing its user plugin if it has
    one), and the line every command prints for it."""
    option = OPTIONS[name]
    value, problem = BAD_VALUES[option.kind]
    settings = {name: value}
    if option.file in PLUGIN_OF_FILE:
        settings["user_plugin"] = PLUGIN_OF_FILE[option.file]
    return settings, f"{name}: {problem.format(choices=', '.join(option.choices))}"


def test_every_kind_of_option_has_a_bad_value():
    assert {option.kind for option in OPTIONS.values()} - {"text"} == set(BAD_VALUES)


@pytest.mark.parametrize("name", TYPED)
def test_bad_value_is_a_config_error_naming_the_option(name, tmp_path):
    settings, message = bad_setting(name)
    with pytest.raises(ConfigError) as caught:
        Config(settings, str(tmp_path)).check()
    assert str(caught.value) == message
    assert caught.value.option == name
    # The typed getter that reads it in the code says the same.
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        getattr(Config(settings, str(tmp_path)), f"get_{OPTIONS[name].kind}")(name)


@pytest.mark.parametrize("name", TYPED)
def test_groupware_reports_a_bad_value_and_exits_2(name, tmp_path, capsys):
    settings, message = bad_setting(name)
    argv = ["--config-dir", CONF, "--data-dir", str(tmp_path)]
    for key, value in settings.items():
        argv += ["--set", f"{key}={value}"]
    assert cli_main(argv + ["user", "list"]) == 2
    assert capsys.readouterr().err == f"groupware: {message}\n"


def test_options_of_a_plugin_not_chosen_are_not_checked(tmp_path):
    Config({"ldap_timeout": "soon", "min_user_uid": "x"}, str(tmp_path)).check()


@pytest.mark.parametrize("command, name", [
    (["-m", "groupware.cli", "serve"], "threads"),
    (["-m", "groupware.cli", "imap"], "imap_listen"),
    (["-m", "groupware.cli", "ical"], "ssl_certificate_file"),
    (["-m", "groupware.cli", "user", "list"], "auth_failure_delay"),
    (["-m", "server"], "attachment_storage"),
    (["-m", "server"], "ldap_uri"),
])
def test_commands_report_a_bad_value_and_exit_2(command, name, tmp_path):
    settings, message = bad_setting(name)
    prog = "python -m server" if command[1] == "server" else "groupware"
    result = run_command(command + [f"--set={k}={v}" for k, v in settings.items()], tmp_path)
    assert (result.returncode, result.stderr) == (2, f"{prog}: {message}\n"), result.stderr
    assert result.stdout == ""


def test_a_bad_value_found_while_starting_is_reported_the_same_way(tmp_path):
    # Only the listener knows it needs both TLS files: found in the reactor, after start-up began.
    result = run_command(["-m", "server", "--set", "server_listen_tls=127.0.0.1:0"], tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.endswith(
        "python -m server: server_listen_tls: needs server_ssl_cert_file and server_ssl_key_file\n")


def commented_options(file):
    """Options with a comment right above them; options written one after another
    share the comment above the first."""
    found, commented = set(), False
    with open(os.path.join(CONF, file), encoding="utf-8") as fp:
        for line in fp:
            line = line.strip()
            if not line:
                commented = False
            elif line.startswith("#"):
                commented = True
            elif commented:
                found.add(line.split("=", 1)[0].strip())
    return found


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_every_option_has_a_comment_in_its_conf_file(name):
    assert name in commented_options(OPTIONS[name].file), f"{name} has no comment in conf/{OPTIONS[name].file}"
