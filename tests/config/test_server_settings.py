"""Config keys of the web server: trusted_proxies (audit 16.11) and where the data directory is (15.9)."""
from __future__ import annotations

import pytest

from llmur.config import BASE_DIR, ConfigError, load_config


def _write(tmp_path, text: str) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return str(path)


def test_trusted_proxies_default_to_none(tmp_path):
    assert load_config(None, env={"LLMUR_VAR_DIR": str(tmp_path)}).config.trusted_proxies == []


def test_trusted_proxies_are_normalized_networks(tmp_path):
    path = _write(tmp_path, "trusted_proxies: [10.1.2.3/8, 127.0.0.1, 'fd00::/8']\n")
    loaded = load_config(path, env={"LLMUR_VAR_DIR": str(tmp_path)})
    assert loaded.config.trusted_proxies == ["10.0.0.0/8", "127.0.0.1/32", "fd00::/8"]


def test_a_bad_trusted_proxy_is_one_line_naming_the_key(tmp_path):
    path = _write(tmp_path, "trusted_proxies: [ingress.local]\n")
    with pytest.raises(ConfigError) as error:
        load_config(path, env={"LLMUR_VAR_DIR": str(tmp_path)})
    assert str(error.value) == (f"llmur: config error in {path}: trusted_proxies: 'ingress.local' is not an IP "
                                "address or CIDR network (expected e.g. 10.0.0.0/8)")


def test_llmur_trusted_proxies_overrides_the_file_and_is_named_when_wrong(tmp_path):
    env = {"LLMUR_VAR_DIR": str(tmp_path), "LLMUR_TRUSTED_PROXIES": "10.0.0.0/8, 192.168.0.0/16"}
    assert load_config(None, env=env).config.trusted_proxies == ["10.0.0.0/8", "192.168.0.0/16"]
    with pytest.raises(ConfigError) as error:
        load_config(None, env={**env, "LLMUR_TRUSTED_PROXIES": "nope"})
    assert str(error.value).startswith("llmur: config error in environment: LLMUR_TRUSTED_PROXIES: 'nope'")


def test_llmur_var_dir_wins(tmp_path):
    assert load_config(None, env={"LLMUR_VAR_DIR": str(tmp_path / "data")}).var_dir == tmp_path / "data"


def test_a_clone_keeps_its_data_in_the_repositorys_var(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)   # wherever it is started from
    loaded = load_config(None, env={"HOME": str(tmp_path)})
    assert (BASE_DIR / "pyproject.toml").is_file()
    assert loaded.var_dir == BASE_DIR / "var"
