"""The FastAPI application: routes for each resource, the pipeline report, audit, health, metrics.

``create_app(target, ...)`` builds an app over one target database with the settings it is
given; ``app_from_env()`` is the factory uvicorn workers call: it reads the process's
:class:`~crmkit.settings.Settings` (the target URL comes from ``CRMKIT_API_TARGET``, set in
the worker's environment by ``crmkit serve``, so that it never appears on a command line).
"""

# No `from __future__ import annotations` here: FastAPI reads the endpoint annotations,
# and the per-resource endpoints below close over their models.

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import replace
from decimal import Decimal
from typing import Annotated, Any, Literal, Optional

import anyio.to_thread
from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, create_model
from sqlalchemy import Engine, literal_column, select

from crmkit.api import auth, guard, queries, reports
from crmkit.api.db import DEFAULT_POOL_SIZE, Database, database, make_engine, run_to_end
from crmkit.api.metrics import CONTENT_TYPE, Metrics, MetricsMiddleware
from crmkit.api.policy import ApiError, Forbidden, Principal, TooManyAttempts, Unauthorized
from crmkit.api.resources import MAX_ID, RESOURCES, OutDateTime, Resource, text_type
from crmkit.schema.vocabulary import ACTIVITY_TYPES, CASE_STATUSES, PRIORITIES, STAGES
from crmkit.settings import Settings

DEFAULT_TOKEN_CACHE = 5.0
Id = Annotated[int, Field(ge=1, le=MAX_ID)]
RecordId = Annotated[int, Path(ge=1, le=MAX_ID, description="The record's id.")]
_bearer = HTTPBearer(auto_error=False, description="A token from `crmkit serve token --user EMAIL`.")


# --- request and response models ------------------------------------------------------


class Params(BaseModel):
    """Paging and search, common to every list endpoint."""

    model_config = ConfigDict(extra="forbid")
    q: text_type(200) | None = Field(None, description="Search: name, email or phone (any part of it).")  # type: ignore[valid-type]
    limit: int = Field(50, ge=1, le=200)
    offset: int = Field(0, ge=0, le=1_000_000)


class AccountParams(Params):
    owner_id: Id | None = None
    department_id: Id | None = None


class ContactParams(Params):
    account_id: Id | None = None
    owner_id: Id | None = None


class OpportunityParams(Params):
    account_id: Id | None = None
    owner_id: Id | None = None
    stage: Literal[STAGES] | None = None  # type: ignore[valid-type]


class CaseParams(Params):
    account_id: Id | None = None
    owner_id: Id | None = None
    status: Literal[CASE_STATUSES] | None = None  # type: ignore[valid-type]
    priority: Literal[PRIORITIES] | None = None  # type: ignore[valid-type]


class ActivityParams(Params):
    account_id: Id | None = None
    contact_id: Id | None = None
    opportunity_id: Id | None = None
    owner_id: Id | None = None
    type: Literal[ACTIVITY_TYPES] | None = None  # type: ignore[valid-type]


PARAMS: dict[str, type[Params]] = {
    "accounts": AccountParams,
    "contacts": ContactParams,
    "opportunities": OpportunityParams,
    "cases": CaseParams,
    "activities": ActivityParams,
}


class Problem(BaseModel):
    detail: str


class FieldProblem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ValidationProblem(BaseModel):
    detail: list[FieldProblem]


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "The body is not JSON."},
    401: {"model": Problem, "description": "No token, or not a live one."},
    403: {"model": Problem, "description": "Your role (or your token's scope) may not do this."},
    404: {"model": Problem, "description": "No such record in your scope."},
    413: {"model": Problem, "description": "The request body is over the limit (1 MB unless configured)."},
    422: {"model": ValidationProblem, "description": "The request does not validate."},
    429: {"model": Problem, "description": "Too many failed authentications from your address; see Retry-After."},
    503: {"model": Problem, "description": "The database is busy; try again."},
}


class Me(BaseModel):
    user_id: int
    name: str
    email: str | None
    role: str
    department_id: int | None


class OwnerStage(BaseModel):
    stage: str
    owner_id: int | None
    owner_name: str | None
    count: int
    amount: Decimal


class StageTotal(BaseModel):
    stage: str
    count: int
    amount: Decimal


class Pipeline(BaseModel):
    department_id: int | None
    by_stage: list[StageTotal]
    by_owner: list[OwnerStage]


class AuditEntry(BaseModel):
    id: int
    at: OutDateTime
    user_id: int
    user_email: str | None
    action: str
    entity: str
    entity_id: int
    before: dict[str, Any] | None
    after: dict[str, Any]
    token_id: int | None = None
    client: str | None = None


class AuditPage(BaseModel):
    items: list[AuditEntry]
    limit: int
    offset: int
    next_offset: int | None


class Health(BaseModel):
    status: str


def page_model(out: type[BaseModel]) -> type[BaseModel]:
    return create_model(
        f"{out.__name__}Page",
        items=(list[out], ...),  # type: ignore[valid-type]
        limit=(int, ...),
        offset=(int, ...),
        next_offset=(Optional[int], None),  # noqa: UP045 (a runtime type)
    )


# --- dependencies ---------------------------------------------------------------------


async def authenticated(request: Request, creds: HTTPAuthorizationCredentials | None) -> Principal:
    """The caller: from the token cache, else from the database (in a worker thread).

    A client address with too many failed authentications in the window gets 429 first.
    """
    client = request.client.host if request.client else "unknown"
    failures: guard.AuthFailures = request.app.state.auth_failures
    failures.check(client)
    token = creds.credentials if creds else None
    cache: auth.TokenCache = request.app.state.tokens
    who = cache.get(token) if token else None
    if who is None:
        try:
            who = await in_db(request, auth.authenticate_in, token)
        except Unauthorized:
            failures.fail(client)
            raise
        cache.put(token or "", who)
    return replace(who, client=client)


async def principal(
    request: Request, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    """The caller of a CRM route: a token of scope ``api``."""
    who = await authenticated(request, creds)
    if who.scope != "api":
        raise Forbidden(f"a token of scope {who.scope} may not read the CRM: mint one with scope api")
    return who


async def metrics_reader(
    request: Request, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    """The caller of /metrics: a token of scope ``metrics``."""
    who = await authenticated(request, creds)
    if who.scope != "metrics":
        raise Forbidden("/metrics needs a token of scope metrics: crmkit serve token --user EMAIL --scope metrics")
    return who


async def in_db(request: Request, func: Callable[..., Awaitable[Any]], *args: Any) -> Any:
    """The coroutine ``func(database, *args)``: on the event loop if the database is asynchronous
    (PostgreSQL), else run to its end in one of the app's database threads (one per pooled connection).

    A plain executor rather than anyio's worker threads: less CPU per hand-off (measured).
    """
    database: Database = request.app.state.database
    if database.on_loop:
        return await func(database, *args)
    executor: ThreadPoolExecutor = request.app.state.executor
    return await asyncio.get_running_loop().run_in_executor(executor, run_to_end, func, database, *args)


Who = Annotated[Principal, Depends(principal)]


# --- routes ---------------------------------------------------------------------------


def resource_router(res: Resource) -> APIRouter:
    """GET list/search, GET one, POST, PATCH for one resource."""
    router = APIRouter(prefix=f"/{res.name}", tags=[res.name], responses=ERRORS)
    Out, Create, Update, Q = res.out, res.create, res.update, PARAMS[res.name]
    Page = page_model(Out)

    # The endpoints are coroutines (see in_db): FastAPI would run a plain `def` endpoint in a
    # worker thread, and then validate its answer in a second one.

    @router.get("", response_model=Page, summary=f"List or search {res.name}")
    async def list_records(params: Annotated[Q, Query()], who: Who, request: Request) -> Any:  # type: ignore[valid-type]
        return await in_db(request, queries.list_records, res, who, params.model_dump())  # type: ignore[attr-defined]

    @router.get("/{record_id}", response_model=Out, summary=f"One of {res.name}")
    async def get_record(record_id: RecordId, who: Who, request: Request) -> Any:
        return await in_db(request, queries.get_record, res, who, record_id)

    @router.post("", response_model=Out, status_code=201, summary=f"Create one of {res.name}")
    async def create_record(body: Create, who: Who, request: Request) -> Any:  # type: ignore[valid-type]
        return await in_db(request, queries.create_record, res, who, body.model_dump())  # type: ignore[attr-defined]

    @router.patch("/{record_id}", response_model=Out, summary=f"Change one of {res.name}")
    async def update_record(record_id: RecordId, body: Update, who: Who, request: Request) -> Any:  # type: ignore[valid-type]
        return await in_db(request, queries.update_record, res, who, record_id, body.model_dump(exclude_unset=True))  # type: ignore[attr-defined]

    return router


def misc_router() -> APIRouter:
    router = APIRouter()

    @router.get("/health", response_model=Health, tags=["service"], summary="Liveness (no database)")
    async def health() -> Any:
        return {"status": "ok"}

    @router.get(
        "/health/ready",
        response_model=Health,
        tags=["service"],
        summary="Readiness: the database answers",
        responses={503: ERRORS[503]},
    )
    async def ready(request: Request) -> Any:
        return await in_db(request, _ready)

    @router.get(
        "/metrics",
        tags=["service"],
        summary="Prometheus metrics",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE: {}}}, 401: ERRORS[401], 403: ERRORS[403], 429: ERRORS[429]},
    )
    def metrics(request: Request, who: Annotated[Principal, Depends(metrics_reader)]) -> Response:
        return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE)

    @router.get(
        "/me",
        response_model=Me,
        tags=["service"],
        summary="Who the token belongs to",
        responses={code: ERRORS[code] for code in (401, 403, 429)},
    )
    async def me(who: Who) -> Any:
        return who.__dict__

    @router.get(
        "/reports/pipeline",
        response_model=Pipeline,
        tags=["reports"],
        responses=ERRORS,
        summary="Opportunity count and amount by stage and owner",
    )
    async def pipeline(
        who: Who,
        request: Request,
        department_id: Annotated[int | None, Query(ge=1, le=MAX_ID, description="Admins only: one department.")] = None,
    ) -> Any:
        return await in_db(request, reports.pipeline, who, department_id)

    @router.get(
        "/audit", response_model=AuditPage, tags=["audit"], responses=ERRORS, summary="The log of every write (admins)"
    )
    async def audit(
        who: Who,
        request: Request,
        entity: Annotated[Literal[(*RESOURCES, "tokens")] | None, Query()] = None,  # type: ignore[valid-type]
        entity_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    ) -> Any:
        if who.role != "admin":
            raise Forbidden("only admins may read the audit log")
        return await in_db(request, queries.audit_entries, entity, entity_id, limit, offset)

    return router


async def _ready(database: Database) -> dict[str, str]:
    async with queries._db_errors(), database.session() as db:
        await db.first(_SELECT_1, {})
    return {"status": "ok"}


_SELECT_1: Any = select(literal_column("1").label("one"))


# --- the application ------------------------------------------------------------------


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    if isinstance(exc, TooManyAttempts):
        headers = {"Retry-After": str(exc.retry_after)}
    message = guard.safe_text(exc.message)  # a database's message may quote the value
    if exc.status == 422:
        loc = ["body", exc.field] if exc.field else ["body"]
        return JSONResponse({"detail": [{"loc": loc, "msg": message, "type": "value_error"}]}, 422)
    return JSONResponse({"detail": message}, exc.status, headers=headers)


def create_app(
    target: str | None = None,
    engine: Engine | None = None,
    token_cache_seconds: float = DEFAULT_TOKEN_CACHE,
    pool_size: int = DEFAULT_POOL_SIZE,
    pg_async: bool = True,
    metrics_dir: str | None = None,
    max_body: int = guard.DEFAULT_MAX_BODY,
    auth_failures: int = guard.DEFAULT_AUTH_FAILURES,
    auth_window_s: float = guard.DEFAULT_AUTH_WINDOW_S,
) -> FastAPI:
    """The API over ``target`` (a database URL), or over an engine the caller owns.

    ``token_cache_seconds``: how long a token, once checked, is trusted without asking the
    database again (revocations take effect within this time; 0 checks every request).
    ``pool_size``: database connections (and so requests at once) of this process.
    ``pg_async``: False runs PostgreSQL requests in worker threads instead of on the event loop.
    ``metrics_dir``: prometheus_client's multiprocess directory, when several workers add up
    their metrics (the same as the worker's ``PROMETHEUS_MULTIPROC_DIR``).
    ``max_body``: the largest request body, in bytes (larger: 413).
    ``auth_failures`` within ``auth_window_s`` seconds from one client address: then 429.
    """
    if target is None and engine is None:
        raise ValueError("create_app needs a target database URL or an engine")
    owned = engine is None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # every database call runs in a worker thread: as many threads as pooled connections
        anyio.to_thread.current_default_thread_limiter().total_tokens = pool_size
        app.state.executor = ThreadPoolExecutor(pool_size, thread_name_prefix="crmkit-db")
        app.state.engine = make_engine(target, pool_size) if owned and target is not None else engine
        app.state.database = database(app.state.engine, pool_size, pg_async)
        await app.state.database.open()
        try:
            yield
        finally:
            app.state.executor.shutdown(wait=True, cancel_futures=True)
            await app.state.database.close()
            if owned:
                app.state.engine.dispose()

    app = FastAPI(
        title="crmkit reference CRM API",
        version="1",
        lifespan=lifespan,
        description="Accounts, contacts, opportunities, cases and activities of the target CRM, "
        "scoped by role and department. Every write is audited.",
    )
    app.state.metrics = Metrics(metrics_dir)
    app.state.tokens = auth.TokenCache(token_cache_seconds)
    app.state.auth_failures = guard.AuthFailures(auth_failures, auth_window_s)
    # the last added is the outermost: headers on every answer, metrics of every answer, then the body limit
    app.add_middleware(guard.BodyLimit, max_bytes=max_body)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    app.add_middleware(guard.SecurityHeaders)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, guard.validation_error)
    # the routers' routes go straight into the app's own router (the same OpenAPI spec): an
    # included router is matched, and its routes matched again, on every request
    app.router.routes.extend(misc_router().routes)
    for res in RESOURCES.values():
        app.router.routes.extend(resource_router(res).routes)
    return app


def app_from_env(settings: Settings | None = None) -> FastAPI:
    """Factory for uvicorn workers: the app over the process's settings (``Settings.from_env()``).

    The target comes from ``CRMKIT_API_TARGET``; the pool size, async PostgreSQL and token
    cache from ``CRMKIT_API_POOL``, ``CRMKIT_API_PG_ASYNC`` and ``CRMKIT_API_TOKEN_CACHE``.
    """
    settings = Settings.from_env() if settings is None else settings
    if settings.api_target is None:
        raise RuntimeError("CRMKIT_API_TARGET is not set: start the API with `crmkit serve --target URL`")
    return create_app(
        settings.api_target,
        token_cache_seconds=settings.api_token_cache_s,
        pool_size=settings.api_pool,
        pg_async=settings.api_pg_async,
        metrics_dir=settings.metrics_dir,
        max_body=settings.api_max_body,
        auth_failures=settings.api_auth_failures,
        auth_window_s=settings.api_auth_window_s,
    )
