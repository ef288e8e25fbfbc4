"""One OpenAPI document for the whole HTTP API, generated from the routes themselves.

Every function's router (`lorapin.http.api`) is included in one resolver whose Powertools-made
document is then finished here: lorapin's error shape for 422 (Powertools documents its own, which
lorapin never answers), API Gateway's own 401 body beside lorapin's, and the JWT security scheme
on every route but the webhooks and these docs. Served at `GET /openapi.json`, browsable at
`GET /docs` (a self-contained page: no CDN).
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import APIGatewayHttpResolver, Router

from lorapin.http.schemas import ErrorBody, GatewayMessage

TITLE, VERSION = "lorapin", "1.0.0"
PUBLIC_PATHS = ("/webhooks/", "/openapi.json", "/docs")
ERROR_REF = "#/components/schemas/ErrorBody"
GATEWAY_REF = "#/components/schemas/GatewayMessage"
DOCS_TAG = ["docs"]


@lru_cache(maxsize=1)
def document() -> dict[str, Any]:
    from lorapin.http.api import documentation_only, generations, training, webhooks

    app = APIGatewayHttpResolver(enable_validation=True)
    for router in (training.routes(documentation_only), generations.routes(documentation_only),
                   webhooks.routes(documentation_only), routes()):
        app.include_router(router)
    schema = app.get_openapi_schema(
        title=TITLE, version=VERSION,
        description="lorapin's HTTP API: every route of every function. Errors are "
                    '`{"error": {"code", "message", "details"}}` (docs/CONTRACTS.md lists the codes).',
    ).model_dump(mode="json", by_alias=True, exclude_none=True)
    return _finish(schema)


def _finish(schema: dict[str, Any]) -> dict[str, Any]:
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["ErrorBody"] = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(schemas["ErrorBody"].pop("$defs", {}))
    schemas["GatewayMessage"] = GatewayMessage.model_json_schema()
    components["securitySchemes"] = {"jwt": {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
        "description": "API Gateway's JWT authorizer; the token's `sub` is the caller"}}
    for path, operations in schema.get("paths", {}).items():
        public = path.startswith(PUBLIC_PATHS)
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            if "422" in responses:
                responses["422"]["content"] = {"application/json": {"schema": {"$ref": ERROR_REF}}}
            operation["security"] = [] if public else [{"jwt": []}]
            if not public:
                responses["401"] = {"description": "no valid JWT: API Gateway's own answer, or lorapin's",
                                    "content": {"application/json": {"schema": {"anyOf": [
                                        {"$ref": GATEWAY_REF}, {"$ref": ERROR_REF}]}}}}
    for unused in ("HTTPValidationError", "ValidationError"):
        if unused not in json.dumps(schema.get("paths", {})):
            schemas.pop(unused, None)
    return schema


DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>lorapin API</title>
<style>body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:60rem;padding:0 1rem}
h2{margin-top:2rem}code{background:#f3f3f3;padding:0 .25rem}table{border-collapse:collapse;width:100%}
td,th{border-bottom:1px solid #ddd;padding:.35rem;text-align:left;vertical-align:top}
.m{font-weight:600;text-transform:uppercase}</style></head>
<body><h1>lorapin API</h1><p>Generated from the code; the document itself is
<a href="openapi.json">openapi.json</a>.</p><div id="api">Loading…</div>
<script>
fetch("openapi.json").then(r => r.json()).then(doc => {
  const rows = [];
  for (const [path, ops] of Object.entries(doc.paths)) for (const [method, op] of Object.entries(ops)) {
    const codes = Object.entries(op.responses || {}).map(([c, r]) => `<code>${c}</code> ${r.description || ""}`);
    rows.push(`<tr><td class="m">${method}</td><td><code>${path}</code><br>${op.summary || ""}</td>` +
              `<td>${(op.security || []).length ? "JWT" : "none"}</td><td>${codes.join("<br>")}</td></tr>`);
  }
  document.getElementById("api").innerHTML = `<p>${doc.info.description}</p><table><tr><th>method</th>` +
    `<th>route</th><th>auth</th><th>answers</th></tr>${rows.join("")}</table>`;
});
</script></body></html>
"""


def routes() -> Router:
    router = Router()

    @router.get("/openapi.json", tags=DOCS_TAG, summary="This document",
                responses={200: {"description": "the OpenAPI document"}})
    def openapi() -> dict[str, Any]:
        return document()

    @router.get("/docs", tags=DOCS_TAG, summary="A browsable page of this document",
                responses={200: {"description": "an HTML page", "content": {"text/html": {}}}})
    def docs() -> Response[str]:
        return Response(status_code=200, content_type=content_types.TEXT_HTML, body=DOCS_PAGE)

    return router
