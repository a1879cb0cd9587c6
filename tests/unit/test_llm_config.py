"""The model file, settings, value types, scripted replies, errors, key ciphers (no I/O)."""

from __future__ import annotations

import asyncio
import base64
import pickle
from pathlib import Path

import pytest
from pydantic import SecretStr

from accounts.errors import SecretUndecryptable
from accounts.settings import SecretsSettings
from cluster.settings import Settings
from serve_apps.llm_router.config import load_model_config, parse_model_config
from serve_apps.llm_router.demo import DemoBackend
from serve_apps.llm_router.errors import (
    BudgetExceeded,
    ContextWindowExceeded,
    LLMConfigError,
    LLMError,
    LLMNotConfigured,
    ModelNotFound,
    ProviderError,
    RateLimited,
)
from serve_apps.llm_router.provider_keys import (
    LEGACY_KEY_ID,
    LegacyKeyCipher,
    derive_key_encryption_key,
    provider_key_cipher,
)
from serve_apps.llm_router.router import open_backend
from serve_apps.llm_router.scripted import Script, ScriptedReply, stream_payloads
from serve_apps.llm_router.settings import LLMSettings
from serve_apps.llm_router.types import ChatChunk, ChatRequest, StreamAccumulator

VALID = """
model_list:
  - model_name: fast
    litellm_params: {model: openai/gpt-4o-mini, api_key: os.environ/TEST_LLM_KEY}
  - model_name: smart
    litellm_params: {model: anthropic/claude-sonnet-4, api_key: sk-ant}
  - model_name: local
    litellm_params: {model: ollama/llama3, api_base: "http://127.0.0.1:11434"}
router_settings:
  fallbacks: [{fast: [smart]}]
  model_group_alias: {gpt-4o-mini: fast}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "models.yaml"
    path.write_text(text)
    return path


def test_a_litellm_router_file_loads_with_env_references(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_LLM_KEY", "sk-from-env")
    config = load_model_config(write(tmp_path, VALID))

    assert config.model_names == ["fast", "smart", "local"]
    assert config.default_model == "fast"
    assert config.model_list[0].litellm_params["api_key"] == "sk-from-env"
    assert [config.provider_of(n) for n in config.model_names] == ["openai", "anthropic", "ollama"]
    assert config.resolve("gpt-4o-mini") == "fast"
    assert config.resolve("gpt-5") is None


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("model_list: []", "model_list"),
        ("models: []", "model_list"),
        ("model_list: [{model_name: x, litellm_params: {}}]", "litellm_params.model is required"),
        ("model_list: [{litellm_params: {model: openai/x}}]", "model_name"),
        (
            "model_list: [{model_name: a, litellm_params: {model: openai/a}}]\n"
            "router_settings: {fallbacks: [{a: [b]}]}",
            "fallback names 'b'",
        ),
        (
            "model_list: [{model_name: a, litellm_params: {model: openai/a}}]\n"
            "router_settings: {retries_typo: 3}",
            "retries_typo",
        ),
        (
            "model_list: [{model_name: a, litellm_params: {model: x, api_key: os.environ/NOPE_X}}]",
            "NOPE_X",
        ),
        ("model_list: [unclosed", "invalid YAML"),
    ],
)
def test_invalid_files_say_what_is_wrong(tmp_path: Path, text: str, problem: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(LLMConfigError) as caught:
        load_model_config(path)
    assert problem in caught.value.detail
    assert str(path) in caught.value.detail


def test_a_missing_file_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(LLMConfigError, match="VIBECODE_LLM_CONFIG"):
        load_model_config(tmp_path / "absent.yaml")


def test_settings_take_the_model_file_from_vibecode_llm_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path, VALID)
    monkeypatch.setenv("VIBECODE_LLM_CONFIG", str(path))
    monkeypatch.setenv("VIBECODE_LLM__USER_DAILY_BUDGET_USD", "2.5")
    monkeypatch.setenv("VIBECODE_AUTH__JWT_SECRET", "x" * 40)
    settings = Settings(data_dir=tmp_path).resolved()

    assert settings.llm.config_path == path
    assert settings.llm.user_daily_budget_usd == 2.5
    assert settings.llm.configured
    assert not settings.llm.demo_enabled
    assert settings.llm.key_encryption_key is not None  # derived in development


def test_the_demo_model_is_a_development_default_only(tmp_path: Path) -> None:
    development = Settings(data_dir=tmp_path).resolved().llm
    assert development.demo_enabled
    assert isinstance(open_backend(development), DemoBackend)
    assert open_backend(LLMSettings(demo=False)) is None
    assert open_backend(LLMSettings()) is None


def test_the_demo_replays_its_session_by_turn() -> None:
    session = (ScriptedReply.text("first"), ScriptedReply.tool_call("finish", {"summary": "ok"}))
    backend = DemoBackend(session)
    history = [{"role": "user", "content": "anything"}]
    first = asyncio.run(backend.complete(ChatRequest(messages=history), model="demo", api_key=None))
    history += [first.message.to_openai(), {"role": "user", "content": "go on"}]
    second = asyncio.run(
        backend.complete(ChatRequest(messages=history), model="demo", api_key=None)
    )
    assert first.message.content == "first"
    assert second.message.tool_calls[0].name == "finish"
    assert backend.resolve(None) == "demo"
    assert backend.resolve("gpt-4") is None


def test_scripts_prefer_matching_rules_then_the_models_queue() -> None:
    script = Script(default=ScriptedReply.text("default"))
    script.add("fast", ScriptedReply.text("queued"))
    script.on_message("run the tests", ScriptedReply.text("matched"))
    ask = [{"role": "user", "content": "Please RUN THE TESTS now"}]

    assert script.next_reply("fast", ask).content == "matched"  # type: ignore[union-attr]
    assert script.next_reply("fast", ask).content == "queued"  # type: ignore[union-attr]
    assert script.next_reply("fast", ask).content == "default"  # type: ignore[union-attr]
    assert script.pending() == 0


def test_streamed_payloads_accumulate_into_the_whole_reply() -> None:
    reply = ScriptedReply.tool_calls_of(
        ScriptedReply.tool_call("write_file", {"path": "a.py"}).tool_calls[0], content="Writing."
    )
    accumulator = StreamAccumulator("fast")
    for payload in stream_payloads(reply, model="fast", messages=[], include_usage=True):
        chunk = ChatChunk.from_openai(payload, model="fast")
        assert ChatChunk.from_openai(chunk.to_openai(), model="fast") == chunk
        accumulator.add(chunk)
    response = accumulator.response()
    assert response.message.content == "Writing."
    assert response.message.tool_calls[0].arguments == '{"path": "a.py"}'
    assert response.finish_reason == "tool_calls"
    assert response.usage.completion_tokens > 0


@pytest.mark.parametrize(
    "error",
    [
        LLMNotConfigured(),
        LLMConfigError("/etc/models.yaml", "bad"),
        ModelNotFound("x", ["a", "b"]),
        ContextWindowExceeded("fast", "too long"),
        RateLimited("fast", "slow down", 2.0),
        ProviderError("fast", "boom", 502),
        BudgetExceeded("run", "r1", 1.0, 1.5),
    ],
)
def test_errors_survive_pickling_with_their_data(error: LLMError) -> None:
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is type(error)
    assert again.__dict__ == error.__dict__


def test_the_legacy_key_cipher_binds_keys_to_their_owner() -> None:
    cipher = LegacyKeyCipher(SecretStr(base64.b64encode(b"k" * 32).decode()))
    sealed = cipher.encrypt("sk-secret", user_id="u1", provider="openai")
    assert b"sk-secret" not in sealed
    assert cipher.decrypt(sealed, user_id="u1", provider="openai") == "sk-secret"
    with pytest.raises(SecretUndecryptable, match="does not open"):
        cipher.decrypt(sealed, user_id="u2", provider="openai")
    other = LegacyKeyCipher(derive_key_encryption_key("another secret"))
    with pytest.raises(SecretUndecryptable, match="does not open"):
        other.decrypt(sealed, user_id="u1", provider="openai")
    with pytest.raises(ValueError, match="32 bytes"):
        LegacyKeyCipher(SecretStr(base64.b64encode(b"short").decode()))


def _spec(key_id: str, byte: bytes) -> SecretStr:
    return SecretStr(f"{key_id}:{base64.b64encode(byte * 32).decode()}")


def test_provider_keys_are_sealed_with_the_secrets_keys(tmp_path: Path) -> None:
    keys = [_spec("k2", b"2"), _spec("k1", b"1")]
    settings = Settings(
        data_dir=tmp_path,
        auth={"jwt_secret": SecretStr("x" * 40)},  # type: ignore[arg-type]
        secrets=SecretsSettings(keys=keys),
    ).resolved()

    assert settings.llm.key_encryption_keys == keys
    cipher = provider_key_cipher(settings.llm)
    assert cipher is not None
    assert cipher.current_key_id == "k2"
    # The single pre-versioned key (derived in development) still opens what it sealed.
    assert cipher.key_ids == ["k2", "k1", LEGACY_KEY_ID]


def test_without_any_key_stored_provider_keys_are_off() -> None:
    assert provider_key_cipher(LLMSettings()) is None
    legacy_only = provider_key_cipher(
        LLMSettings(key_encryption_key=derive_key_encryption_key("s"))
    )
    assert legacy_only is not None
    assert legacy_only.current_key_id == LEGACY_KEY_ID


def test_parse_accepts_already_loaded_yaml() -> None:
    config = parse_model_config(
        {"model_list": [{"model_name": "a", "litellm_params": {"model": "openai/a"}}]}
    )
    assert config.default_model == "a"
