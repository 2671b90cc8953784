"""The FastAPI app: OpenAI-compatible routes, the page, keys, limits and errors.

    GET  /                      the web page (chat, completion with every knob, images)
    GET  /health                liveness, the model, queue length and engine counters
    GET  /v1/models             the models this server answers for
    POST /v1/completions        text completion; `stream: true` sends server-sent events
    POST /v1/chat/completions   chat; `stream: true` sends OpenAI's chunk format
    POST /v1/images/generations labelled PNGs as base64 (when an image model is loaded)

Bodies are read up to `max_body_bytes` (413 beyond), parsed by hand so that every bad request
gets an OpenAI-style error body with a 4xx status, and answered with the AI-generated labels.
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator
from importlib import resources
from typing import Protocol

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

import luoxia
from luoxia.core.errors import LuoxiaError, PromptTooLongError
from luoxia.core.openmp import release_thread_pool
from luoxia.serve import schemas
from luoxia.serve.config import ServeConfig
from luoxia.serve.engine import QueueFullError, TextEngine
from luoxia.serve.errors import ApiError, bad_request
from luoxia.serve.labelling import NOTICE_SUFFIX, label_text
from luoxia.text.pipeline import GenerationResult, TextModel
from luoxia.text.prompting import PreparedPrompt

FINISH = {"eos": "stop", "stop": "stop", "length": "length", "filtered": "content_filter", "interrupted": "stop"}


class ImageBackend(Protocol):
    name: str

    def generate(self, request: schemas.ImageRequest) -> list[tuple[bytes, dict]]:
        """Labelled PNG files (bytes) and each one's provenance."""


def create_app(config: ServeConfig, text: TextModel, images: ImageBackend | None = None) -> FastAPI:
    config.validate()
    engine = TextEngine(text, config.max_batch, config.batch_window_ms / 1000, config.max_queue)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        engine.close()

    app = FastAPI(title="luoxia", version=luoxia.__version__, docs_url=None, redoc_url=None, lifespan=lifespan)
    app.state.engine, app.state.config = engine, config
    started = int(time.time())

    # --- errors, keys, bodies ---------------------------------------------------------------------

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, e: ApiError):
        return e.response({"WWW-Authenticate": "Bearer"} if e.status == 401 else None)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, e: StarletteHTTPException):
        kind = "not_found_error" if e.status_code == 404 else "invalid_request_error"
        return ApiError(e.status_code, f"{request.method} {request.url.path}: {e.detail}", type=kind).response()

    @app.exception_handler(Exception)
    async def _bug(request: Request, e: Exception):  # a bug of ours: say so without a traceback
        return ApiError(500, f"internal error ({type(e).__name__}); see the server log", type="server_error").response()

    def check_key(request: Request) -> None:
        if config.api_key is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), config.api_key.encode()):
            raise ApiError(401, "invalid or missing API key: send `Authorization: Bearer <key>`",
                           code="invalid_api_key")

    async def read_json(request: Request) -> dict:
        check_key(request)
        limit = config.max_body_bytes
        declared = request.headers.get("content-length", "")
        too_big = ApiError(413, f"the request body is larger than this server's limit of {limit} bytes; send less "
                                "or start the server with a higher --max-body-bytes", code="request_too_large")
        if declared.isdigit() and int(declared) > limit:
            raise too_big
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise too_big
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as e:
            raise bad_request(f"the body is not valid JSON ({e}); send a JSON object", code="invalid_json") from None
        if not isinstance(data, dict):
            raise bad_request("the body must be a JSON object", code="invalid_json")
        return data

    def check_model(requested: str | None, served: str) -> None:
        if requested and requested != served:
            raise ApiError(404, f"the model '{requested}' does not exist here; this server serves '{served}'",
                           param="model", code="model_not_found", type="not_found_error")

    def check_decoding(req: schemas.Decoding) -> int:
        check_model(req.model, text.name)
        new = req.new_tokens(config.default_max_tokens)
        if new > config.max_tokens_limit:
            raise bad_request(f"max_tokens {new} is above this server's limit of {config.max_tokens_limit}; ask for "
                              "fewer, or start the server with a higher --max-tokens-limit", param="max_tokens")
        if req.n > config.max_n:
            raise bad_request(f"n {req.n} is above this server's limit of {config.max_n}", param="n")
        if not req.visible_label and not config.allow_unlabelled:
            raise bad_request("this server keeps the visible AI-generated notice; visible_label=false needs a server "
                              "started with --allow-unlabelled", param="visible_label", code="label_required")
        return new

    async def prepare(prompts: list, req: schemas.Decoding, new_tokens: int, chat: bool) -> list[PreparedPrompt]:
        if len(prompts) * req.n > config.max_batch:
            raise bad_request(f"{len(prompts)} prompts x n {req.n} is more than this server decodes at once "
                              f"({config.max_batch}); send fewer per request", param="prompt")
        params = req.generation_params(new_tokens)

        def work() -> list[PreparedPrompt]:
            return [row for p in prompts for row in [text.prepare(p, chat=chat, **params)] * req.n]

        try:
            return await run_in_threadpool(work)
        except PromptTooLongError as e:
            raise bad_request(str(e), param="messages" if chat else "prompt", code="context_length_exceeded") from None
        except LuoxiaError as e:
            raise bad_request(str(e)) from None

    def submit(rows: list[PreparedPrompt]):
        try:
            return engine.submit(rows)
        except QueueFullError as e:
            raise ApiError(429, f"the server is busy ({e}); retry shortly", type="rate_limit_error",
                           code="queue_full") from None

    async def answer(rows: list[PreparedPrompt], reply: Reply):
        """Queue the rows; stream the reply as server-sent events, or wait for it whole."""
        job = submit(rows)
        if reply.req.stream:
            return sse(reply.stream(job.results()))
        return await reply.whole(job.results())

    # --- routes ----------------------------------------------------------------------------------

    @app.get("/", response_class=HTMLResponse)
    async def page():
        return resources.files("luoxia.serve").joinpath("static/index.html").read_text(encoding="utf-8")

    @app.get("/health")
    async def health():
        return {"status": "ok", "version": luoxia.__version__, "model": text.name,
                "image_model": images.name if images else None, "queued": engine.queued,
                "engine": engine.stats.to_dict(), "auth": config.api_key is not None}

    @app.get("/v1/models")
    async def models(request: Request):
        check_key(request)
        names = [text.name] + ([images.name] if images else [])
        return {"object": "list",
                "data": [{"id": n, "object": "model", "created": started, "owned_by": "luoxia"} for n in names]}

    @app.post("/v1/completions")
    async def completions(request: Request):
        req = schemas.parse(schemas.CompletionRequest, await read_json(request))
        new_tokens = check_decoding(req)
        rows = await prepare(req.prompt, req, new_tokens, chat=False)
        return await answer(rows, Reply("cmpl", "text_completion", text.name, req, chat=False))

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        req = schemas.parse(schemas.ChatRequest, await read_json(request))
        new_tokens = check_decoding(req)
        if not text.has_chat_template:
            raise bad_request(f"the model '{text.name}' has no chat template; use /v1/completions", param="messages")
        try:
            messages = [{"role": "system" if m.role == "developer" else m.role,
                         "content": m.text().removesuffix(NOTICE_SUFFIX) if m.role == "assistant" else m.text()}
                        for m in req.messages]
        except ValueError as e:
            raise bad_request(str(e), param="messages") from None
        rows = await prepare([messages], req, new_tokens, chat=True)
        return await answer(rows, Reply("chatcmpl", "chat.completion", text.name, req, chat=True))

    @app.post("/v1/images/generations")
    async def image_generations(request: Request):
        body = await read_json(request)
        req = schemas.parse(schemas.ImageRequest, body, ignored=schemas.IMAGE_IGNORED, refuse={})
        if images is None:
            raise ApiError(404, "no image model is loaded on this server; start `luoxia serve` with --image-model",
                           param="model", code="model_not_found", type="not_found_error")
        check_model(req.model, images.name)
        if req.n > config.max_images:
            raise bad_request(f"n {req.n} is above this server's limit of {config.max_images}", param="n")
        if not req.visible_label and not config.allow_unlabelled:
            raise bad_request("this server keeps the visible AI-generated label; visible_label=false needs a server "
                              "started with --allow-unlabelled", param="visible_label", code="label_required")
        def work() -> list[tuple[bytes, dict]]:
            try:
                return images.generate(req)
            finally:
                release_thread_pool()  # this pool thread stays for other work; its idle team would slow text

        try:
            made = await run_in_threadpool(work)
        except LuoxiaError as e:
            raise bad_request(str(e)) from None
        return {"created": int(time.time()),
                "data": [{"b64_json": base64.b64encode(png).decode(), "provenance": prov} for png, prov in made]}

    return app


def sse(events: AsyncIterator[dict]) -> StreamingResponse:
    async def lines():
        async for event in events:
            yield f"data: {json.dumps(event, ensure_ascii=False)}\n\n"
        yield "data: [DONE]\n\n"

    return StreamingResponse(lines(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


class Reply:
    """Builds the response objects of one request: whole, or as a stream of chunks."""

    def __init__(self, prefix: str, kind: str, model: str, req: schemas.Decoding, chat: bool):
        self.id, self.kind, self.model, self.req, self.chat = f"{prefix}-{uuid.uuid4().hex}", kind, model, req, chat
        self.created = int(time.time())

    def _head(self, kind: str) -> dict:
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model}

    def _labelled(self, delivered: str, result: GenerationResult) -> dict:
        return label_text(delivered, result.provenance, self.req.visible_label)

    def _usage(self, results: dict[int, GenerationResult]) -> dict:
        prompt = sum(r.provenance.stats.get("prompt_tokens", 0) for i, r in results.items() if i % self.req.n == 0)
        completion = sum(len(r.token_ids) for r in results.values())
        usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
        drafts = [r.provenance.stats["speculation"] for r in results.values() if "speculation" in r.provenance.stats]
        if drafts:  # with a prediction: draft tokens the model kept and dropped (drafts come from the prompt too)
            kept, drafted = sum(d["accepted"] for d in drafts), sum(d["drafted"] for d in drafts)
            usage["completion_tokens_details"] = {"accepted_prediction_tokens": kept,
                                                  "rejected_prediction_tokens": drafted - kept}
        return usage

    async def whole(self, events: AsyncIterator) -> dict:
        results: dict[int, GenerationResult] = {}
        try:
            async for row, event in events:
                if isinstance(event, GenerationResult):
                    results[row] = event
        except LuoxiaError as e:
            raise bad_request(str(e)) from None
        choices = []
        for i in sorted(results):
            r = results[i]
            delivered = r.text + (NOTICE_SUFFIX if self.req.visible_label else "")
            body = {"message": {"role": "assistant", "content": delivered}} if self.chat else {"text": delivered}
            choices.append({"index": i, **body, "logprobs": None, "finish_reason": FINISH[r.finish_reason],
                            **self._labelled(delivered, r)})
        return {**self._head(self.kind), "choices": choices, "usage": self._usage(results)}

    async def stream(self, events: AsyncIterator) -> AsyncIterator[dict]:
        kind = "chat.completion.chunk" if self.chat else "text_completion"

        def chunk(index: int, piece: str | None, finish: str | None = None, **extra) -> dict:
            if self.chat:
                body = {"delta": {} if piece is None else {"content": piece}}
            else:
                body = {"text": piece or ""}
            return {**self._head(kind), "choices": [{"index": index, **body, "logprobs": None,
                                                     "finish_reason": finish}], **extra}

        if self.chat:
            for i in range(self.req.n):
                first = chunk(i, "")
                first["choices"][0]["delta"] = {"role": "assistant", "content": ""}
                yield first
        sent: dict[int, str] = {}
        results: dict[int, GenerationResult] = {}
        try:
            async for row, event in events:
                if isinstance(event, str):
                    sent[row] = sent.get(row, "") + event
                    yield chunk(row, event)
                    continue
                results[row] = event
                delivered = sent.get(row, "")
                if self.req.visible_label:
                    delivered += NOTICE_SUFFIX
                    yield chunk(row, NOTICE_SUFFIX)
                yield chunk(row, None, FINISH[event.finish_reason], **self._labelled(delivered, event))
        except LuoxiaError as e:
            yield bad_request(str(e)).body()
            return
        except Exception as e:  # noqa: BLE001 - the stream has started: report in band, then end it
            yield ApiError(500, f"internal error ({type(e).__name__}); see the server log", type="server_error").body()
            return
        if self.req.stream_options and self.req.stream_options.include_usage:
            yield {**self._head(kind), "choices": [], "usage": self._usage(results)}
