"""``~/.lash/config.json`` (``LASH_HOME`` overrides the directory) and provider resolution.

Precedence for every setting: command-line flag, then environment, then the config file,
then a built-in default. Unknown fields in the file are rejected with the path of the field,
so a typo never silently falls back to a default.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import msgspec

from lash.cli.errors import CliError

__all__ = [
    "KINDS",
    "Config",
    "ModelDefault",
    "ProviderEntry",
    "Settings",
    "config_path",
    "lash_home",
    "load_config",
    "resolve",
]

ProviderKind = Literal["openai", "openai-compatible", "anthropic", "google", "openrouter"]
KINDS: tuple[str, ...] = ("openai", "anthropic", "google", "openrouter", "openai-compatible")
KEY_VARS = {
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "google": "GEMINI_API_KEY",
    "openrouter": "OPENROUTER_API_KEY",
    "openai-compatible": "LASH_API_KEY",
}
DEFAULT_MODELS = {
    "openai": "gpt-5-mini",
    "anthropic": "claude-sonnet-4-5",
    "google": "gemini-2.5-flash",
    "openrouter": "openai/gpt-5-mini",
}
SCRIPTED = "scripted"  # hidden: a deterministic model for the CLI's own tests


class _Strict(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class ProviderEntry(_Strict, frozen=True, kw_only=True):
    """One configured provider: its adapter ``type`` and optional credentials."""

    type: ProviderKind
    api_key: str | None = None
    base_url: str | None = None


class ModelDefault(_Strict, frozen=True, kw_only=True):
    """The model a provider uses when ``--model`` is not given."""

    model: str
    context_window: int | None = None
    max_output_tokens: int | None = None


class Config(_Strict, frozen=True, kw_only=True):
    """The whole file."""

    active_provider: str | None = None
    providers: dict[str, ProviderEntry] = msgspec.field(default_factory=dict)
    model_defaults: dict[str, ModelDefault] = msgspec.field(default_factory=dict)


def lash_home(env: Mapping[str, str] | None = None) -> Path:
    """``$LASH_HOME``, else ``~/.lash``."""
    env = os.environ if env is None else env
    home = env.get("LASH_HOME")
    return Path(home).expanduser() if home else Path.home() / ".lash"


def config_path(env: Mapping[str, str] | None = None) -> Path:
    """Where the config file lives."""
    return lash_home(env) / "config.json"


def load_config(env: Mapping[str, str] | None = None) -> Config:
    """The parsed config (empty when the file does not exist)."""
    path = config_path(env)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return Config()
    except OSError as err:
        raise CliError(f"cannot read {path}: {err.strerror or err}") from None
    try:
        return msgspec.json.decode(data, type=Config)
    except msgspec.ValidationError as err:
        raise CliError(f"{path}: {err}") from None
    except msgspec.DecodeError as err:
        raise CliError(f"{path} is not valid JSON: {err}") from None


@dataclass(frozen=True)
class Settings:
    """What a run talks to: one adapter kind, its credentials and the model."""

    name: str
    kind: str
    model: str
    api_key: str | None = None
    base_url: str | None = None
    context_window: int | None = None
    max_output_tokens: int | None = None


def not_configured(path: Path) -> CliError:
    """The message for a first run: exactly what to set, and the offline alternative."""
    return CliError(
        "no LLM provider configured. Set one of OPENAI_API_KEY, ANTHROPIC_API_KEY, "
        "GEMINI_API_KEY or OPENROUTER_API_KEY; or LASH_BASE_URL (plus LASH_API_KEY and "
        "LASH_MODEL) for any OpenAI-compatible server; or pass --provider/--api-key/--model; "
        f'or write {path} with "active_provider" and "providers" '
        '(e.g. {"active_provider": "openai", "providers": {"openai": {"type": "openai", '
        '"api_key": "sk-..."}}}). '
        "To see lash work offline, run: lash demo"
    )


def resolve(
    *,
    provider: str | None = None,
    model: str | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    env: Mapping[str, str] | None = None,
    config: Config | None = None,
) -> Settings:
    """Combine flags, environment and config into :class:`Settings` (or a :class:`CliError`)."""
    env = os.environ if env is None else env
    cfg = load_config(env) if config is None else config
    path = config_path(env)
    name = (provider or env.get("LASH_PROVIDER") or cfg.active_provider or "").strip()
    entry: ProviderEntry | None = None
    kind: str
    if name == SCRIPTED:
        return Settings(name=name, kind=SCRIPTED, model=model or env.get("LASH_MODEL") or name)
    if name:
        if name in cfg.providers:
            entry = cfg.providers[name]
            kind = entry.type
        elif name in KINDS:
            kind = name
        else:
            known = ", ".join([*KINDS, *sorted(cfg.providers)])
            raise CliError(f"unknown provider {name!r}; expected one of: {known}")
    elif base_url or env.get("LASH_BASE_URL"):
        kind = name = "openai-compatible"
    else:
        found = next((k for k in DEFAULT_MODELS if env.get(KEY_VARS[k])), None)
        if found is None:
            raise not_configured(path)
        kind = name = found
    key = api_key or (entry.api_key if entry else None) or env.get(KEY_VARS[kind]) or None
    url = base_url or (entry.base_url if entry else None)
    if kind == "openai-compatible":
        url = url or env.get("LASH_BASE_URL")
        if not url:
            raise CliError(
                "provider openai-compatible needs a server: set LASH_BASE_URL, pass "
                f'--base-url, or set "base_url" under providers.{name} in {path}'
            )
    elif not key:
        raise CliError(
            f"provider {name} needs an API key: set {KEY_VARS[kind]}, pass --api-key, "
            f'or set "api_key" under providers.{name} in {path}'
        )
    defaults = cfg.model_defaults.get(name) or cfg.model_defaults.get(kind)
    chosen = model or env.get("LASH_MODEL") or (defaults.model if defaults else None)
    chosen = chosen or DEFAULT_MODELS.get(kind)
    if not chosen:
        raise CliError(
            f"provider {name} needs a model: pass --model, set LASH_MODEL, or set "
            f"model_defaults.{name}.model in {path}"
        )
    return Settings(
        name=name,
        kind=kind,
        model=chosen,
        api_key=key,
        base_url=url,
        context_window=defaults.context_window if defaults and chosen == defaults.model else None,
        max_output_tokens=(
            defaults.max_output_tokens if defaults and chosen == defaults.model else None
        ),
    )
