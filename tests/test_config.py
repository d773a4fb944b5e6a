"""Settings precedence: explicit arguments > environment (`MAILSEC_*`) > TOML file > defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailsec.config import Settings, load_settings, parse_hostport


def test_defaults() -> None:
    s = load_settings(env={})
    assert s == Settings()
    assert s.data_dir == Path("var") and s.search_budget_seconds == 5.0
    assert s.resolved_database_url == f"sqlite:///{(Path('var') / 'mailsec.db').resolve()}"
    assert s.resolved_blob_dir == Path("var") / "blobs"
    assert s.api_address == ("127.0.0.1", 8025)


def test_toml_then_env_then_arguments(tmp_path: Path) -> None:
    toml = tmp_path / "mailsec.toml"
    toml.write_text(
        'data_dir = "/srv/from-toml"\napi_listen = "0.0.0.0:9000"\nsearch_budget_seconds = 2\n'
        "rate_limit_per_minute = 60\n"
        'dns_servers = ["192.0.2.1", "192.0.2.2"]\nsomething_new = "kept"\n'
    )
    s = load_settings(config_file=toml, env={})
    assert s.data_dir == Path("/srv/from-toml") and s.api_address == ("0.0.0.0", 9000)
    assert s.search_budget_seconds == 2 and s.rate_limit_per_minute == 60
    assert s.dns_servers == ("192.0.2.1", "192.0.2.2")
    assert s.extra == {"something_new": "kept"}
    env = {
        "MAILSEC_DATA_DIR": "/srv/from-env",
        "MAILSEC_SEARCH_BUDGET_SECONDS": "0.5",
        "MAILSEC_DNS_SERVERS": "198.51.100.1, 198.51.100.2",
        "MAILSEC_RATE_LIMIT_BURST": "7",
        "MAILSEC_NOT_A_SETTING": "ignored",
        "OTHER_VAR": "ignored",
    }
    s = load_settings(config_file=toml, env=env)
    assert s.data_dir == Path("/srv/from-env")  # env beats TOML
    assert s.search_budget_seconds == 0.5 and s.rate_limit_burst == 7
    assert s.dns_servers == ("198.51.100.1", "198.51.100.2")
    assert s.api_listen == "0.0.0.0:9000" and s.rate_limit_per_minute == 60  # TOML beats defaults
    s = load_settings(config_file=toml, env=env, data_dir=tmp_path / "arg", api_listen=None)
    assert s.data_dir == tmp_path / "arg" and s.api_listen == "0.0.0.0:9000"  # None means "not given"
    # MAILSEC_CONFIG names the file when no argument does.
    s = load_settings(env={"MAILSEC_CONFIG": str(toml)})
    assert s.data_dir == Path("/srv/from-toml")


def test_database_url_and_blob_dir(tmp_path: Path) -> None:
    s = load_settings(env={"MAILSEC_DATA_DIR": str(tmp_path)})
    assert s.resolved_database_url == f"sqlite:///{tmp_path / 'mailsec.db'}"
    assert s.resolved_blob_dir == tmp_path / "blobs"
    s = load_settings(
        env={"MAILSEC_DATABASE_URL": "postgresql://u@h/db", "MAILSEC_BLOB_DIR": str(tmp_path / "b")},
    )
    assert s.resolved_database_url == "postgresql://u@h/db" and s.resolved_blob_dir == tmp_path / "b"
    assert s.with_overrides(database_url=None).database_url == "postgresql://u@h/db"


def test_bad_values_fail_loudly(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        load_settings(env={"MAILSEC_RATE_LIMIT_PER_MINUTE": "lots"})
    with pytest.raises(FileNotFoundError):
        load_settings(config_file=tmp_path / "missing.toml", env={})


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:8025", ("127.0.0.1", 8025)),
        (":9000", ("127.0.0.1", 9000)),
        ("9000", ("127.0.0.1", 9000)),
        ("example.org", ("example.org", 25)),
        ("[::1]:8025", ("::1", 8025)),
        ("[::1]", ("::1", 25)),
    ],
)
def test_parse_hostport(value: str, expected: tuple[str, int]) -> None:
    assert parse_hostport(value, 25) == expected
