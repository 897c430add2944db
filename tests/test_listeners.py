"""Listen addresses as every service reads them from the config."""
import pytest

from shared.config import ConfigError
from shared.endpoints import parse_address, parse_listen


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
