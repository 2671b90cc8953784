"""What a server is allowed to do: bind address, key, request limits, batching, labels."""

from __future__ import annotations

import dataclasses

from luoxia.core.errors import InvalidParameterError
from luoxia.core.registry import DEFAULT_TEXT_MODEL

API_KEY_ENV = "LUOXIA_API_KEY"


@dataclasses.dataclass
class ServeConfig:
    model: str = DEFAULT_TEXT_MODEL
    image_model: str | None = None  # an image model to serve at /v1/images/generations; None: the default
    host: str = "127.0.0.1"  # loopback unless told otherwise
    port: int = 8000
    api_key: str | None = None  # when set, every /v1 request needs `Authorization: Bearer <key>`
    max_body_bytes: int = 1 << 20  # larger request bodies get 413 before they are read
    max_tokens_limit: int = 1024  # the most new tokens one choice may ask for
    default_max_tokens: int = 256  # when a request does not say
    max_n: int = 8  # choices per request
    max_batch: int = 16  # rows decoded together
    batch_window_ms: float = 5.0  # how long the first request of a batch waits for company
    max_queue: int = 64  # requests waiting beyond this get 429
    allow_unlabelled: bool = False  # may a request turn off the visible AI-generated notice?
    max_images: int = 16  # images per request

    def validate(self) -> ServeConfig:
        checks = [
            (1 <= self.port <= 65535, f"port must be in 1..65535, got {self.port}"),
            (self.max_body_bytes >= 1024, f"max_body_bytes must be >= 1024, got {self.max_body_bytes}"),
            (self.max_tokens_limit >= 1, f"max_tokens_limit must be >= 1, got {self.max_tokens_limit}"),
            (1 <= self.default_max_tokens <= self.max_tokens_limit,
             f"default_max_tokens must be in 1..max_tokens_limit ({self.max_tokens_limit}), "
             f"got {self.default_max_tokens}"),
            (self.max_batch >= 1, f"max_batch must be >= 1, got {self.max_batch}"),
            (self.max_n >= 1, f"max_n must be >= 1, got {self.max_n}"),
            (self.batch_window_ms >= 0, f"batch_window_ms must be >= 0, got {self.batch_window_ms}"),
            (self.max_queue >= 1, f"max_queue must be >= 1, got {self.max_queue}"),
        ]
        for ok, message in checks:
            if not ok:
                raise InvalidParameterError(message)
        return self
