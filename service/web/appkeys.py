"""Typed keys for the state the web app keeps."""

from __future__ import annotations

from collections.abc import Iterator

import aiohttp
from aiohttp import web
from redis.asyncio import Redis

from service.admin_auth import AdminAuth
from service.apitokens import ApiToken
from service.background import Background
from service.clock import Clock
from service.config import Config
from service.core import Core
from service.metrics import Metrics

CONFIG = web.AppKey("config", Config)
CLOCK = web.AppKey("clock", Clock)
REDIS = web.AppKey("redis", Redis)
HTTP = web.AppKey("http", aiohttp.ClientSession)
CORE = web.AppKey("core", Core)
BACKGROUND = web.AppKey("background", Background)
OPENAPI = web.AppKey("openapi", bytes)
METRICS = web.AppKey("metrics", Metrics)
REQUEST_IDS = web.AppKey("request_ids", Iterator[str])
ADMIN = web.AppKey("admin", AdminAuth)
REQUEST_ID = web.RequestKey("request_id", str)  # the request's id (X-Request-Id)
API_TOKEN = web.RequestKey("api_token", ApiToken)  # the API token that authorized the request
