"""Serving: an OpenAI-compatible HTTP API and a web page over luoxia's generators.

    luoxia serve                      # http://127.0.0.1:8000 : the page; /v1/... : the API

`engine` batches concurrent text requests in front of one model, `app` is the FastAPI app
(routes, auth, limits, OpenAI-style errors), `labelling` puts the AI-generated labels on every
response, and `static/index.html` is the page.
"""
