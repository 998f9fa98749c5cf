"""Provider settings: flags beat environment beat config.json; bad files fail clearly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lash.cli.config import Config, ModelDefault, ProviderEntry, load_config, resolve
from lash.cli.errors import CliError


def _home(tmp_path: Path, config: object | None = None, raw: str | None = None) -> dict[str, str]:
    if raw is not None:
        (tmp_path / "config.json").write_text(raw)
    elif config is not None:
        (tmp_path / "config.json").write_text(json.dumps(config))
    return {"LASH_HOME": str(tmp_path)}


def test_no_provider_names_every_variable_and_the_demo(tmp_path: Path) -> None:
    with pytest.raises(CliError) as info:
        resolve(env=_home(tmp_path))
    message = info.value.message
    for needle in (
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
        "GEMINI_API_KEY",
        "OPENROUTER_API_KEY",
        "LASH_BASE_URL",
        str(tmp_path / "config.json"),
        '"active_provider"',
        "lash demo",
    ):
        assert needle in message


def test_environment_key_picks_the_adapter_and_default_model(tmp_path: Path) -> None:
    env = {**_home(tmp_path), "ANTHROPIC_API_KEY": "sk-ant"}
    settings = resolve(env=env)
    assert (settings.kind, settings.api_key, settings.model) == (
        "anthropic",
        "sk-ant",
        "claude-sonnet-4-5",
    )


def test_flags_beat_environment_beat_config(tmp_path: Path) -> None:
    config = {
        "active_provider": "work",
        "providers": {"work": {"type": "openai", "api_key": "from-config"}},
        "model_defaults": {"work": {"model": "cfg-model", "context_window": 50000}},
    }
    env = {**_home(tmp_path, config), "OPENAI_API_KEY": "from-env"}
    settings = resolve(env=env)
    assert (settings.name, settings.kind, settings.api_key) == ("work", "openai", "from-config")
    assert (settings.model, settings.context_window) == ("cfg-model", 50000)
    settings = resolve(env={**env, "LASH_MODEL": "env-model"})
    assert settings.model == "env-model" and settings.context_window is None
    settings = resolve(env=env, model="flag-model", api_key="flag-key")
    assert (settings.model, settings.api_key) == ("flag-model", "flag-key")


def test_base_url_means_openai_compatible_and_needs_a_model(tmp_path: Path) -> None:
    env = {**_home(tmp_path), "LASH_BASE_URL": "http://127.0.0.1:9/v1"}
    with pytest.raises(CliError, match="needs a model: pass --model, set LASH_MODEL"):
        resolve(env=env)
    settings = resolve(env={**env, "LASH_MODEL": "local"})
    assert (settings.kind, settings.base_url, settings.model) == (
        "openai-compatible",
        "http://127.0.0.1:9/v1",
        "local",
    )


def test_missing_key_for_a_named_provider(tmp_path: Path) -> None:
    with pytest.raises(CliError, match="provider google needs an API key: set GEMINI_API_KEY"):
        resolve(provider="google", env=_home(tmp_path))


def test_unknown_provider(tmp_path: Path) -> None:
    with pytest.raises(CliError, match="unknown provider 'nope'; expected one of: openai"):
        resolve(provider="nope", env=_home(tmp_path))


def test_unknown_fields_are_rejected_with_their_path(tmp_path: Path) -> None:
    env = _home(tmp_path, {"providers": {"x": {"type": "openai", "apikey": "k"}}})
    with pytest.raises(CliError, match=r"unknown field `apikey` - at `\$.providers\[...\]`"):
        load_config(env)
    env = _home(tmp_path, {"activeProvider": "openai"})
    with pytest.raises(CliError, match="unknown field `activeProvider`"):
        load_config(env)


def test_corrupt_json_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CliError, match="config.json is not valid JSON"):
        load_config(_home(tmp_path, raw="{not json"))


def test_missing_file_is_an_empty_config(tmp_path: Path) -> None:
    assert load_config({"LASH_HOME": str(tmp_path / "nowhere")}) == Config()


def test_config_round_trip_types() -> None:
    cfg = Config(
        active_provider="p",
        providers={"p": ProviderEntry(type="openai-compatible", base_url="http://h")},
        model_defaults={"p": ModelDefault(model="m")},
    )
    assert resolve(env={}, config=cfg).base_url == "http://h"
