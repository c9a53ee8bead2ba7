"""The API's own documents: `/openapi.json`, Swagger UI at `/docs` and ReDoc at `/redoc`.

Their scripts, styles and icon come from the fastapi-offline package, served here under
`/docs/assets/`: FastAPI's pages load them from a CDN, so on a machine without internet they
were blank. Through the input gate like every route (api.inputs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import APIRouter, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

from billfold.api.inputs import InputRoute
from billfold.platform.errors import NotFound

ASSETS_DIR = Path(fastapi_offline.__file__).parent / "static"
ASSETS_PATH = "/docs/assets"
# The files served, each with its media type: nothing else in that folder is.
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
    "favicon.png": "image/png",
}
# Swagger UI would ask validator.swagger.io for a badge: nothing leaves the page.
SWAGGER_UI_PARAMETERS = {"validatorUrl": None}
PAGE_METHODS = ["GET", "HEAD"]

router = APIRouter(route_class=InputRoute, include_in_schema=False)


@router.api_route("/openapi.json", methods=PAGE_METHODS)
async def openapi(request: Request) -> JSONResponse:
    document: dict[str, Any] = request.app.openapi()
    root = request.scope.get("root_path")
    if root:
        # Served under a prefix: Swagger UI's requests go to it.
        document = {**document, "servers": [{"url": root}]}
    return JSONResponse(document)


@router.api_route("/docs", methods=PAGE_METHODS)
async def swagger_ui(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    return get_swagger_ui_html(
        openapi_url=f"{root}/openapi.json",
        title=f"{request.app.title} - Swagger UI",
        oauth2_redirect_url=f"{root}/docs/oauth2-redirect",
        swagger_js_url=f"{root}{ASSETS_PATH}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{ASSETS_PATH}/swagger-ui.css",
        swagger_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
        swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
    )


@router.api_route("/docs/oauth2-redirect", methods=PAGE_METHODS)
async def swagger_ui_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


@router.api_route("/redoc", methods=PAGE_METHODS)
async def redoc(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    return get_redoc_html(
        openapi_url=f"{root}/openapi.json",
        title=f"{request.app.title} - ReDoc",
        redoc_js_url=f"{root}{ASSETS_PATH}/redoc.standalone.js",
        redoc_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
        with_google_fonts=False,
    )


@router.api_route(ASSETS_PATH + "/{name}", methods=PAGE_METHODS)
async def asset(name: str) -> FileResponse:
    media_type = ASSETS.get(name)
    if media_type is None:
        raise NotFound(f"'{ASSETS_PATH}/{name[:40]}' does not exist")
    return FileResponse(ASSETS_DIR / name, media_type=media_type)
