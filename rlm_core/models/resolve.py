"""Model names -> models: the one place that turns a string into an implementation, and checks a
name before any call. `demo/` names are scripted, `local/` names are GGUF files run here,
everything else goes through litellm."""

from __future__ import annotations

from rlm_core.errors import ModelError
from rlm_core.models import local
from rlm_core.models.litellm_client import LiteLLMClient, load_litellm
from rlm_core.models.model import Model
from rlm_core.models.scripted import DEMO_MODELS, ScriptedModel, is_demo, sub_policy


def model_for(
    name: str,
    *,
    api_base: str | None = None,
    api_key: str | None = None,
    retries: int = 3,
    timeout_s: float = 600.0,
    temperature: float | None = None,
    seed: int | None = None,
) -> Model:
    """A model answering plain prompts (a sub model, a baseline, Test connection). The engine
    resolves root models itself: a scripted root must speak the engine's protocol."""
    if is_demo(name):
        return ScriptedModel(name, sub_policy)
    if local.is_local(name):
        return local.LocalModel(name, temperature=temperature, seed=seed)
    return LiteLLMClient(
        name,
        api_base=api_base,
        api_key=api_key,
        retries=retries,
        timeout_s=timeout_s,
        temperature=temperature,
        seed=seed,
    )


def check_model(model: str, *, api_base: str | None = None, api_key: str | None = None) -> None:
    """Raise ModelError, before any call, for a model that cannot be routed or has no key."""
    if is_demo(model):
        if model not in DEMO_MODELS:
            raise ModelError(
                f"Unknown demo model '{model}'. The demo models are: {', '.join(DEMO_MODELS)}."
            )
        return
    if local.is_local(model):
        local.llama_cpp()  # says what to install when llama-cpp-python is missing
        if not local.model_path(model).is_file():
            raise ModelError(f"No model file at {local.model_path(model)} (model {model}).")
        return
    litellm = load_litellm()
    try:
        litellm.get_llm_provider(model=model, api_base=api_base)
    except Exception:  # litellm raises many types for a name it cannot route
        raise ModelError(
            f"Unknown model '{model}': litellm does not know this provider. Use e.g. "
            "openai/<name>, anthropic/<name>, ollama_chat/<name>, or demo/root."
        ) from None
    if api_key or api_base:
        return
    try:
        missing = litellm.validate_environment(model=model).get("missing_keys") or []
    except Exception:  # litellm cannot tell which keys it needs: let the call say
        return
    if missing:
        names = " or ".join(str(k) for k in missing[:2])
        raise ModelError(f"Missing API key for {model}: set {names} or enter a key.")
