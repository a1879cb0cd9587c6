"""AI routing: configured models behind a litellm Router, usage, budgets and provider keys.

Importing this package is cheap: litellm is imported only by ``litellm_router`` on first use.
"""

from serve_apps.llm_router.errors import (
    BudgetExceeded,
    ContextWindowExceeded,
    InvalidModelRequest,
    InvalidProviderKey,
    LLMConfigError,
    LLMError,
    LLMNotConfigured,
    ModelNotFound,
    ProviderError,
    ProviderKeysUnavailable,
    ProviderTimeout,
    RateLimited,
)
from serve_apps.llm_router.ports import ChatBackend, LLMClient
from serve_apps.llm_router.settings import LLMSettings
from serve_apps.llm_router.types import (
    CallContext,
    ChatChunk,
    ChatMessage,
    ChatRequest,
    ChatResponse,
    ModelCard,
    StreamAccumulator,
    ToolCall,
    ToolCallDelta,
    Usage,
)

__all__ = [
    "BudgetExceeded",
    "CallContext",
    "ChatBackend",
    "ChatChunk",
    "ChatMessage",
    "ChatRequest",
    "ChatResponse",
    "ContextWindowExceeded",
    "InvalidModelRequest",
    "InvalidProviderKey",
    "LLMClient",
    "LLMConfigError",
    "LLMError",
    "LLMNotConfigured",
    "LLMSettings",
    "ModelCard",
    "ModelNotFound",
    "ProviderError",
    "ProviderKeysUnavailable",
    "ProviderTimeout",
    "RateLimited",
    "StreamAccumulator",
    "ToolCall",
    "ToolCallDelta",
    "Usage",
]
