"""The hub nodes that share this site, and the devices each owns (``ingest/ownership.py``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field
from sharpeye.api.deps import OwnershipDep, require
from sharpeye.api.permission import Permission
from sharpeye.api.user import Principal

router = APIRouter(tags=["cluster"])


class NodeView(BaseModel):
    id: str = Field(description="The node's id (SHARPEYE_NODE_ID).")
    started_at: datetime = Field(description="When the node started (UTC).")
    last_seen: datetime = Field(description="The node's last announcement (UTC); it renews every lease period.")
    devices: list[str] = Field(description="Ids of the devices and site roles (role:...) whose lease it holds.")
    weight: float = Field(description="The node's share of the work relative to the others (SHARPEYE_NODE_WEIGHT).")
    load: float = Field(description="Sum of the weights of what it owns.")
    inventory_version: int = Field(description="The last inventory change the node has applied (ingest/inventory.py).")


class ClusterView(BaseModel):
    node: str = Field(description="The node that answered.")
    nodes: list[NodeView] = Field(description="Every live node, by id.")


@router.get("/api/cluster")
async def cluster(
    ownership: OwnershipDep,
    _: Annotated[Principal, Depends(require(Permission.devices_read))],
) -> ClusterView:
    """Live nodes as they announced themselves in Redis (a node silent for a lease TTL is gone)."""
    views = [
        NodeView(
            id=n.id,
            started_at=datetime.fromtimestamp(n.started_at, UTC),
            last_seen=datetime.fromtimestamp(n.last_seen, UTC),
            devices=n.devices,
            weight=n.weight,
            load=n.load,
            inventory_version=n.inventory_version,
        )
        for n in await ownership.nodes()
    ]
    return ClusterView(node=ownership.node_id, nodes=views)
