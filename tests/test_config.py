"""Every option has a default, is documented in its conf/ file, and is read back."""
import os

import pytest

from shared.config import OPTIONS, Config, ConfigError, parse_config_text, parse_overrides

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
