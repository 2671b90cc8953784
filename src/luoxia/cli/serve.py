"""`luoxia serve`: the OpenAI-compatible API and the web page, on 127.0.0.1 unless told otherwise.

    luoxia serve                                  # http://127.0.0.1:8000
    luoxia serve --port 9000 --api-key SECRET     # or LUOXIA_API_KEY=SECRET luoxia serve
    luoxia serve --host 0.0.0.0 --api-key SECRET  # reachable from other machines: use a key
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys


def register(commands: argparse._SubParsersAction) -> None:
    from luoxia.cli.generate import _add_model_flags
    from luoxia.serve.config import API_KEY_ENV, ServeConfig

    d = ServeConfig()
    p = commands.add_parser(
        "serve", help="serve the OpenAI-compatible API and the web page",
        description="Serve /v1/completions, /v1/chat/completions (streaming too), /v1/images/generations and "
                    "/v1/models, OpenAI-style, plus a web page at /. Every response carries the AI-generated labels.",
    )
    _add_model_flags(p)
    p.add_argument("--image-model", metavar="NAME|PATH",
                   help="image model for /v1/images/generations (default: the embedded one, when installed); "
                        "'none' serves text only")
    net = p.add_argument_group("network")
    net.add_argument("--host", default=d.host, help=f"address to bind (default {d.host}: this machine only)")
    net.add_argument("--port", type=int, default=d.port, help=f"port (default {d.port})")
    net.add_argument("--api-key", help=f"require `Authorization: Bearer KEY` on /v1 (default: ${API_KEY_ENV} if set)")
    lim = p.add_argument_group("limits")
    lim.add_argument("--max-body-bytes", type=int, default=d.max_body_bytes,
                     help=f"largest request body (default {d.max_body_bytes})")
    lim.add_argument("--max-tokens-limit", type=int, default=d.max_tokens_limit,
                     help=f"most new tokens per choice (default {d.max_tokens_limit})")
    lim.add_argument("--max-batch", type=int, default=d.max_batch,
                     help=f"rows decoded together (default {d.max_batch})")
    lim.add_argument("--max-queue", type=int, default=d.max_queue,
                     help=f"waiting requests before 429 (default {d.max_queue})")
    lim.add_argument("--allow-unlabelled", action="store_true",
                     help="let a request drop the visible AI-generated notice (visible_label=false); "
                          "the signed metadata label is always sent")
    p.set_defaults(run=lambda args: serve(args))


def serve(args: argparse.Namespace) -> int:
    from luoxia.cli.generate import _model_choice, load_model
    from luoxia.serve.config import API_KEY_ENV, ServeConfig

    config = ServeConfig(
        host=args.host, port=args.port, api_key=args.api_key or os.environ.get(API_KEY_ENV) or None,
        max_body_bytes=args.max_body_bytes, max_tokens_limit=args.max_tokens_limit,
        default_max_tokens=min(ServeConfig.default_max_tokens, args.max_tokens_limit),
        max_batch=args.max_batch, max_queue=args.max_queue, allow_unlabelled=args.allow_unlabelled,
    ).validate()
    if not _is_loopback(config.host) and config.api_key is None:
        print(f"luoxia: warning: serving on {config.host} without an API key; anyone who can reach this port "
              f"can use it (set --api-key or ${API_KEY_ENV})", file=sys.stderr)
    choice = _model_choice(args)  # checked, and its --threads set, before anything loads
    images = load_images(args.image_model)
    text = load_model(choice)
    if args.compile:
        print("luoxia: compiling the decode step (about 40 s with a warm compile cache, minutes the first time)",
              file=sys.stderr)
        text.warm_up()

    import uvicorn

    from luoxia.serve.app import create_app

    app = create_app(config, text, images)
    print(f"luoxia: serving {text.name} at http://{config.host}:{config.port}/ (API: /v1, Ctrl-C stops)",
          file=sys.stderr)
    uvicorn.run(app, host=config.host, port=config.port, log_level="warning")
    return 0


def load_images(name: str | None):
    """The image backend for /v1/images/generations; None when image generation is not available."""
    if name == "none":
        return None
    from luoxia.core.errors import ModelNotFoundError
    from luoxia.serve.images import ImageService

    try:
        return ImageService.load(name)
    except ModelNotFoundError as e:
        if name is not None:
            raise
        print(f"luoxia: warning: serving text only ({e})", file=sys.stderr)
        return None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
