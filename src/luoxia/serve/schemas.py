"""Request bodies of the OpenAI endpoints, checked field by field.

Fields OpenAI defines that change nothing here (`user`, `metadata`, `store`, ...) are accepted
and ignored; features this server does not have (tools, logprobs, logit_bias, ...) are refused by
name rather than silently dropped; any other unknown field is an error, so a misspelt
`temprature` does not go unnoticed. luoxia's own decoding knobs (`top_k`, `min_p`,
`repetition_penalty`, `min_tokens`) and `visible_label` are accepted as extensions (the openai
client sends them with `extra_body`). `prediction` (predicted outputs) drafts tokens for speculative
decoding: the answer is the one it would be without it, only sooner.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from luoxia.serve.errors import bad_request

IGNORED = {"user", "metadata", "store", "service_tier", "safety_identifier", "prompt_cache_key",
           "prompt_cache_retention", "parallel_tool_calls", "verbosity", "reasoning_effort", "moderation"}
# field -> the value that means "not asked for" (None: any value is refused)
UNSUPPORTED = {"tools": [], "tool_choice": "none", "functions": [], "function_call": "none", "logprobs": False,
               "top_logprobs": 0, "logit_bias": {}, "echo": False, "suffix": None, "best_of": 1, "audio": None,
               "web_search_options": None, "modalities": ["text"]}
IMAGE_IGNORED = {"user", "moderation", "quality", "style", "background", "output_compression", "safety_identifier"}


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: str
    text: str | None = None


class Prediction(BaseModel):
    """OpenAI's predicted outputs: text the answer is expected to largely repeat (a file being edited)."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["content"]
    content: str | list[ContentPart]

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text or "" for part in self.content if part.type == "text")


class Decoding(BaseModel):
    """What completions and chat completions share."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    n: int = Field(1, ge=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    frequency_penalty: float = Field(0.0, ge=-2, le=2)
    presence_penalty: float = Field(0.0, ge=-2, le=2)
    prediction: Prediction | None = None
    # luoxia's extensions
    top_k: int | None = Field(None, ge=0)
    min_p: float | None = Field(None, ge=0, le=1)
    repetition_penalty: float | None = Field(None, gt=0)
    min_tokens: int | None = Field(None, ge=0)
    visible_label: bool = True

    @field_validator("stop")
    @classmethod
    def _stop(cls, value):
        stops = [value] if isinstance(value, str) else value or []
        if len(stops) > 4 or any(not s for s in stops):
            raise ValueError("give at most 4 non-empty stop strings")
        return stops

    def new_tokens(self, default: int) -> int:
        return self.max_completion_tokens or self.max_tokens or default

    def generation_params(self, max_new_tokens: int) -> dict:
        """GenerationConfig keyword arguments; OpenAI samples at temperature 1 unless told 0."""
        params = {"max_new_tokens": max_new_tokens, "stop": tuple(self.stop or ()), "seed": self.seed,
                  "frequency_penalty": self.frequency_penalty, "presence_penalty": self.presence_penalty,
                  "do_sample": self.temperature > 0, "temperature": self.temperature}
        if self.temperature > 0:
            params.update(top_p=self.top_p, top_k=self.top_k, min_p=self.min_p)
        if self.repetition_penalty is not None:
            params["repetition_penalty"] = self.repetition_penalty
        if self.min_tokens:
            params["min_new_tokens"] = self.min_tokens
        if self.prediction is not None and self.prediction.text():
            params["prediction"] = self.prediction.text()  # drafts for speculative decoding (text.speculative)
        return params


class CompletionRequest(Decoding):
    prompt: str | list[str]

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, value):
        prompts = [value] if isinstance(value, str) else value
        if not prompts or any(not p for p in prompts):
            raise ValueError("give a non-empty prompt (a string or a list of strings)")
        return prompts


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        if self.content is None or isinstance(self.content, str):
            return self.content or ""
        kinds = {part.type for part in self.content} - {"text"}
        if kinds:
            raise ValueError(f"message content of type {', '.join(sorted(kinds))} is not supported; send text")
        return "".join(part.text or "" for part in self.content)


class ChatRequest(Decoding):
    messages: list[ChatMessage] = Field(min_length=1)


class ImageRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1, max_length=1000)
    model: str | None = None
    n: int = Field(1, ge=1)
    size: str | None = None
    response_format: Literal["b64_json"] = "b64_json"
    output_format: Literal["png"] = "png"
    # luoxia's extensions
    steps: int = Field(50, ge=1, le=1000)
    guidance: float = Field(3.0, ge=0)
    seed: int | None = None
    visible_label: bool = True


def parse(model: type[BaseModel], body: dict, ignored: set[str] = IGNORED, refuse: dict = UNSUPPORTED):
    """The request as `model`, or an ApiError that names the first bad field."""
    body = {k: v for k, v in body.items() if k not in ignored}
    for name, neutral in refuse.items():
        if name in body and body.pop(name) not in (neutral, None):
            raise bad_request(f"'{name}' is not supported by this server", param=name, code="unsupported_parameter")
    try:
        return model.model_validate(body)
    except ValidationError as e:
        error = e.errors()[0]
        param = ".".join(str(p) for p in error["loc"]) or None
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = f"unrecognized request argument supplied: {param}"
        elif error["type"] == "missing":
            message = f"missing required parameter: {param}"
        raise bad_request(f"{param}: {message}" if param and error["type"] != "extra_forbidden" else message,
                          param=param) from None
