"""A loopback HTTP server standing in for the Hugging Face Hub (``HF_ENDPOINT``), with the three routes
huggingface_hub's ``create_repo`` and ``create_commit`` use for small files: create a repository, check a README's
metadata (``validate-yaml``, answered with no error), ask how each file goes up (``preupload``: every file "regular",
i.e. inline in the commit, no LFS or Xet), and the commit itself (NDJSON: a header, then one line per file with its
content in base64); and the client's daily fetch of the agent-harness registry, answered empty. It keeps what it was
sent: the repositories created, each commit's files and every request's Authorization header; any other route
answers 404 and is kept in ``unknown``, so a test sees a client that asked for more than this stand-in serves. A
write (create, commit) without ``Bearer <token>`` is refused with 401, as the Hub refuses a bad token."""

from __future__ import annotations

import asyncio
import base64
import json
import threading
from typing import Any

from aiohttp import web


class LoopbackHub:
    """``with LoopbackHub(token) as hub: ... HF_ENDPOINT=hub.url ...; hub.files["owner/name"]``."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.created: list[dict[str, Any]] = []          # the bodies of /api/repos/create
        self.files: dict[str, dict[str, bytes]] = {}     # repo -> path -> bytes committed
        self.authorizations: list[str | None] = []       # every request's Authorization header
        self.unknown: list[str] = []                     # "METHOD path" of every route not served
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        authorization = request.headers.get("Authorization")
        self.authorizations.append(authorization)
        writes = request.method == "POST" and not request.path.endswith("/validate-yaml")
        if writes and authorization != f"Bearer {self.token}":
            return web.json_response({"error": "Invalid username or password."}, status=401)
        return await handler(request)

    async def _create(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.created.append(body)
        return web.json_response({"url": f"{self.url}/datasets/{body['organization']}/{body['name']}",
                                  "name": f"{body['organization']}/{body['name']}"})

    async def _validate_yaml(self, request: web.Request) -> web.Response:
        return web.json_response({"errors": [], "warnings": []})

    async def _agent_harnesses(self, request: web.Request) -> web.Response:
        return web.json_response({"standardEnvVars": [], "harnesses": {}})

    async def _preupload(self, request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response({"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                            for f in body["files"]]})

    async def _commit(self, request: web.Request) -> web.Response:
        repo = f"{request.match_info['owner']}/{request.match_info['name']}"
        lines = [json.loads(line) for line in (await request.read()).decode().splitlines() if line.strip()]
        committed = self.files.setdefault(repo, {})
        for line in lines:
            if line["key"] == "file":
                committed[line["value"]["path"]] = base64.b64decode(line["value"]["content"])
        return web.json_response({"commitUrl": f"{self.url}/datasets/{repo}/commit/{'0' * 40}",
                                  "commitOid": "0" * 40, "pullRequestUrl": None})

    async def _unknown(self, request: web.Request) -> web.Response:
        self.unknown.append(f"{request.method} {request.path}")
        return web.json_response({"error": "not served by the loopback Hub"}, status=404)

    async def _start(self) -> None:
        app = web.Application(middlewares=[self._record], client_max_size=64 << 20)
        app.router.add_post("/api/repos/create", self._create)
        app.router.add_post("/api/validate-yaml", self._validate_yaml)
        app.router.add_get("/api/agent-harnesses", self._agent_harnesses)
        app.router.add_post("/api/datasets/{owner}/{name}/preupload/{revision}", self._preupload)
        app.router.add_post("/api/datasets/{owner}/{name}/commit/{revision}", self._commit)
        app.router.add_route("*", "/{tail:.*}", self._unknown)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def __enter__(self) -> LoopbackHub:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
