"""Errors of AI routing. Domain data only; the gateway maps them to HTTP once.

Every error pickles with its data (``__reduce__``), so a Serve handle re-raises the same type in
the caller: an agent can catch ``ContextWindowExceeded`` and condense its history.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BudgetExceeded",
    "ContextWindowExceeded",
    "InvalidModelRequest",
    "InvalidProviderKey",
    "LLMConfigError",
    "LLMError",
    "LLMNotConfigured",
    "ModelNotFound",
    "ProviderError",
    "ProviderKeysUnavailable",
    "ProviderTimeout",
    "RateLimited",
]


class LLMError(Exception):
    """Root of every AI-routing error. ``detail`` is safe to show to the caller."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.detail,))


class LLMNotConfigured(LLMError):
    """No model is configured (no ``VIBECODE_LLM_CONFIG`` and the demo model is off)."""

    def __init__(
        self,
        detail: str = (
            "No model configured: set VIBECODE_LLM_CONFIG to a YAML file in litellm's router "
            "format (model_list: [{model_name, litellm_params: {model, api_key, api_base}}]) "
            "and restart, or set VIBECODE_LLM__DEMO=true to try the offline demo model."
        ),
    ) -> None:
        super().__init__(detail)


class LLMConfigError(LLMError):
    """The model configuration file is missing or invalid. ``path`` names the file."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path, self.problem))


class ModelNotFound(LLMError):
    """The requested model name is not configured. ``available`` lists the names that are."""

    def __init__(self, model: str, available: list[str]) -> None:
        names = ", ".join(available) or "none"
        super().__init__(f"Model {model!r} is not configured; available: {names}.")
        self.model = model
        self.available = available

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.model, self.available))


class _ModelError(LLMError):
    """An error of one call to ``model`` (the name the caller asked for)."""

    def __init__(self, model: str, detail: str) -> None:
        super().__init__(detail)
        self.model = model

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.model, self.detail))


class ContextWindowExceeded(_ModelError):
    """The messages do not fit the model's context window: condense them and call again."""


class InvalidModelRequest(_ModelError):
    """The provider refused the request as malformed (bad parameters, tools, content)."""


class ProviderTimeout(_ModelError):
    """The provider did not answer within the timeout (after retries and fallbacks)."""


class RateLimited(_ModelError):
    """The provider rate-limited the call (after retries). ``retry_after_s`` when known."""

    def __init__(self, model: str, detail: str, retry_after_s: float | None = None) -> None:
        super().__init__(model, detail)
        self.retry_after_s = retry_after_s

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.model, self.detail, self.retry_after_s))


class ProviderError(_ModelError):
    """The provider failed (5xx, connection, authentication) after retries and fallbacks.
    ``status`` is the provider's HTTP status when there was one."""

    def __init__(self, model: str, detail: str, status: int | None = None) -> None:
        super().__init__(model, detail)
        self.status = status

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.model, self.detail, self.status))


class BudgetExceeded(LLMError):
    """A budget is spent: ``scope`` is ``"run"`` or ``"user"`` (daily), ``owner_id`` its id."""

    def __init__(self, scope: str, owner_id: str, limit_usd: float, spent_usd: float) -> None:
        what = "this run" if scope == "run" else "today for this user"
        super().__init__(
            f"Budget exceeded: {spent_usd:.4f} USD spent {what} of a {limit_usd:.4f} USD limit."
        )
        self.scope = scope
        self.owner_id = owner_id
        self.limit_usd = limit_usd
        self.spent_usd = spent_usd

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.scope, self.owner_id, self.limit_usd, self.spent_usd))


class InvalidProviderKey(LLMError):
    """A provider key that cannot be stored (bad provider name or key)."""


class ProviderKeysUnavailable(LLMError):
    """Provider keys cannot be stored: no encryption key is configured."""

    def __init__(
        self,
        detail: str = (
            "Provider keys are disabled: set VIBECODE_LLM__KEY_ENCRYPTION_KEY "
            "(32 random bytes, base64) to store users' own provider keys."
        ),
    ) -> None:
        super().__init__(detail)
