"""Health and metrics."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sharpeye.api.deps import PUBLIC, ServicesDep, StatusDep, require
from sharpeye.api.permission import Permission
from sharpeye.api.user import Principal

router = APIRouter(tags=["health"])


@router.get("/api/health")
async def health(node: StatusDep, _: Annotated[Principal, Depends(require(Permission.health_read))]) -> JSONResponse:
    """Every component's state and the endpoint it uses (credentials redacted). 503 when degraded."""
    report: dict[str, Any] = await node.health_report()
    return JSONResponse(report, status_code=200 if report["status"] == "ok" else 503)


@router.get("/healthz", dependencies=[PUBLIC])
async def liveness(node: StatusDep) -> JSONResponse:
    """Unauthenticated probe for container health checks: status only, no details."""
    report = await node.health_report()
    return JSONResponse({"status": report["status"]}, status_code=200 if report["status"] == "ok" else 503)


@router.get("/metrics", dependencies=[PUBLIC])
async def metrics(services: ServicesDep) -> Response:
    """Prometheus metrics (open, as scrapers expect; bind the hub to a private address or proxy it)."""
    await services.status.refresh_gauges()
    return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)
