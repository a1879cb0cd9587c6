"""The model configuration file: litellm's router format, validated with clear errors.

    model_list:
      - model_name: fast                       # the name clients ask for; the first is the default
        litellm_params: {model: openai/gpt-4o-mini, api_key: os.environ/OPENAI_API_KEY}
    router_settings:                           # optional, a subset of litellm's Router options
      fallbacks: [{fast: [smart]}]
      model_group_alias: {gpt-4o-mini: fast}

``os.environ/NAME`` values are read from the environment when the file is loaded.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from serve_apps.llm_router.errors import LLMConfigError

__all__ = ["ModelConfig", "ModelEntry", "RouterOptions", "load_model_config", "parse_model_config"]

ENV_PREFIX = "os.environ/"


class ModelEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")

    model_name: str = Field(min_length=1, max_length=200)
    litellm_params: dict[str, Any]
    model_info: dict[str, Any] = Field(default_factory=dict)

    @field_validator("litellm_params")
    @classmethod
    def _needs_model(cls, params: dict[str, Any]) -> dict[str, Any]:
        model = params.get("model")
        if not isinstance(model, str) or not model.strip():
            raise ValueError("litellm_params.model is required, e.g. 'openai/gpt-4o-mini'")
        return params

    @property
    def provider(self) -> str:
        """The provider whose key this entry uses: ``custom_llm_provider`` or the model prefix."""
        explicit = self.litellm_params.get("custom_llm_provider")
        if isinstance(explicit, str) and explicit:
            return explicit
        model: str = self.litellm_params["model"]
        return model.split("/", 1)[0] if "/" in model else "openai"


class RouterOptions(BaseModel):
    """The litellm Router options operators may set in ``router_settings``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    fallbacks: list[dict[str, list[str]]] = Field(default_factory=list)
    context_window_fallbacks: list[dict[str, list[str]]] = Field(default_factory=list)
    model_group_alias: dict[str, str] = Field(default_factory=dict)
    num_retries: int | None = Field(default=None, ge=0)
    timeout: float | None = Field(default=None, gt=0)
    stream_timeout: float | None = Field(default=None, gt=0)
    allowed_fails: int | None = Field(default=None, ge=0)
    cooldown_time: float | None = Field(default=None, ge=0)
    routing_strategy: str | None = None


class ModelConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    model_list: list[ModelEntry] = Field(min_length=1)
    router_settings: RouterOptions = Field(default_factory=RouterOptions)

    @property
    def model_names(self) -> list[str]:
        """Configured names in file order, without duplicates (one name may have many entries)."""
        return list(dict.fromkeys(entry.model_name for entry in self.model_list))

    @property
    def default_model(self) -> str:
        return self.model_list[0].model_name

    def resolve(self, name: str) -> str | None:
        """The configured name ``name`` refers to (itself or through an alias), or None."""
        if name in self.model_names:
            return name
        target = self.router_settings.model_group_alias.get(name)
        return target if target in self.model_names else None

    def provider_of(self, name: str) -> str:
        return next(e.provider for e in self.model_list if e.model_name == name)

    def check_references(self, source: str) -> None:
        """Raise ``LLMConfigError`` when a fallback or alias names an unconfigured model."""
        names = set(self.model_names)
        options = self.router_settings
        for rules in (*options.fallbacks, *options.context_window_fallbacks):
            for primary, targets in rules.items():
                for name in (primary, *targets):
                    if name not in names:
                        raise LLMConfigError(
                            source, f"fallback names {name!r}, which is not a model_name"
                        )
        for alias, target in options.model_group_alias.items():
            if target not in names:
                raise LLMConfigError(source, f"alias {alias!r} points at unknown {target!r}")


def _expand_env(value: Any, source: str) -> Any:
    if isinstance(value, str) and value.startswith(ENV_PREFIX):
        name = value.removeprefix(ENV_PREFIX)
        if name not in os.environ:
            raise LLMConfigError(source, f"environment variable {name} is not set")
        return os.environ[name]
    if isinstance(value, dict):
        return {key: _expand_env(item, source) for key, item in value.items()}
    if isinstance(value, list):
        return [_expand_env(item, source) for item in value]
    return value


def parse_model_config(data: Any, *, source: str = "<config>") -> ModelConfig:
    """Validate already-parsed YAML; raise ``LLMConfigError`` saying what is wrong and where."""
    if not isinstance(data, dict) or "model_list" not in data:
        raise LLMConfigError(source, "expected a mapping with a 'model_list' (litellm format)")
    try:
        config = ModelConfig.model_validate(_expand_env(data, source))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in exc.errors()
        )
        raise LLMConfigError(source, problems) from exc
    config.check_references(source)
    return config


def load_model_config(path: Path) -> ModelConfig:
    """Read and validate the YAML file at ``path``."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise LLMConfigError(source, "file not found (VIBECODE_LLM_CONFIG)") from exc
    except OSError as exc:
        raise LLMConfigError(source, f"cannot be read: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise LLMConfigError(source, f"invalid YAML: {exc}") from exc
    return parse_model_config(data, source=source)
