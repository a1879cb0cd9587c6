"""Settings owned by AI routing (``VIBECODE_LLM__*``; the model file is ``VIBECODE_LLM_CONFIG``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, SecretStr

__all__ = ["LLMSettings"]


class LLMSettings(BaseModel):
    """Models, reliability, budgets, provider-key encryption and Serve autoscaling."""

    # A YAML file in litellm's router format; the root settings fill it from VIBECODE_LLM_CONFIG.
    config_path: Path | None = None
    # The offline ``demo`` model, offered only when no config is set. None: on in development.
    demo: bool | None = None
    # Keys sealing users' provider keys: ``id:base64(32 bytes)``, newest first (the first
    # seals, all open), as ``VIBECODE_SECRETS__KEYS``, which the root settings copy here unless
    # this is set. Empty and no ``key_encryption_key``: stored provider keys are off.
    key_encryption_keys: list[SecretStr] = []
    # The single AES-256-GCM key (32 bytes, base64) used before versioned keys: keep it set
    # until ``vibecode secrets rotate`` has re-sealed the keys stored under it. The root
    # settings derive it from the JWT secret in development.
    key_encryption_key: SecretStr | None = None
    # Per-user spend per UTC day; None: unlimited. Per-run budgets come with each call.
    user_daily_budget_usd: float | None = None
    # How long a router replica trusts what it read of a user's stored provider keys and of
    # their spend today (0: read on every call). A key stored, replaced or deleted takes
    # effect within this bound; spend through other replicas is seen within it.
    cache_ttl_s: float = Field(default=5.0, ge=0)
    # Per attempt; the router's default, a model entry's ``litellm_params.timeout`` wins.
    request_timeout_s: float = 120.0
    # Retries per model before its fallbacks are tried, with exponential backoff (or the
    # provider's Retry-After): initial * 2^attempt + random jitter, capped.
    num_retries: int = Field(default=2, ge=0)
    retry_initial_delay_s: float = 0.5
    retry_max_delay_s: float = 8.0
    retry_jitter_s: float = 0.75
    # Serve autoscaling of the router deployment.
    min_replicas: int = 1
    max_replicas: int = 4
    target_ongoing_requests: float = 32.0
    max_ongoing_requests: int = 128

    @property
    def demo_enabled(self) -> bool:
        """True when the demo model is offered: demo on and no model file configured."""
        return self.config_path is None and bool(self.demo)

    @property
    def configured(self) -> bool:
        """True when some model (configured or demo) is offered."""
        return self.config_path is not None or self.demo_enabled

    def autoscaling_config(self) -> dict[str, float | int]:
        return {
            "min_replicas": self.min_replicas,
            "max_replicas": self.max_replicas,
            "target_ongoing_requests": self.target_ongoing_requests,
        }
