"""Display labels, Chinese and English, from where they are defined: each installed kind's driver declares its own
(the kind and its reading kinds), and governance defines the case stages and actions. The console shows these
instead of keeping copies, so a new kind or stage needs no console change."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from sharpeye.api.deps import require
from sharpeye.api.permission import Permission
from sharpeye.api.user import Principal
from sharpeye.governance.case import STAGE_LABELS
from sharpeye.governance.flow import ACTION_LABELS, EVENT_LABELS
from sharpeye.ingest.driver import Labels
from sharpeye.ingest.registry import Registry, installed

router = APIRouter(prefix="/api", tags=["labels"])

Reader = Annotated[Principal, Depends(require(Permission.self_service))]


def registry(request: Request) -> Registry:
    """The hub's registry of kinds (the installed ones when the app runs without a hub, e.g. in docs tools)."""
    hub = getattr(request.app.state, "hub", None)
    found = getattr(hub, "registry", None)
    return found if isinstance(found, Registry) else installed()


RegistryDep = Annotated[Registry, Depends(registry)]


class LabelView(BaseModel):
    zh: str = Field(description="Chinese (the console's first language).")
    en: str = Field(description="English.")


class KindView(BaseModel):
    kind: str = Field(description="The kind key: config `kind:`, entry-point name, folder name.")
    transport: str = Field(description="What carries its data: mqtt, video or sip.")
    label: LabelView
    readings: dict[str, LabelView] = Field(description="Each reading kind the driver emits, with its labels.")


class LabelsView(BaseModel):
    """Every label the console reads from the hub, by namespace (``kind.fence``, ``stage.reported``...)."""

    kind: dict[str, LabelView]
    reading: dict[str, LabelView]
    stage: dict[str, LabelView]
    action: dict[str, LabelView] = Field(description="Case actions (buttons of the case detail).")
    case_event: dict[str, LabelView] = Field(description="Every entry of a case's history: actions and events.")


def _view(labels: Labels) -> LabelView:
    return LabelView(zh=labels["zh"], en=labels["en"])


def kind_views(kinds: Registry) -> list[KindView]:
    views = []
    for key in kinds.kinds:
        driver = kinds.get(key)
        readings = {r: _view(driver.labels[r]) for r in driver.reading_kinds if r in driver.labels}
        views.append(
            KindView(
                kind=key,
                transport=driver.transport,
                label=_view(driver.labels.get(key, {"zh": key, "en": key})),
                readings=readings,
            )
        )
    return views


@router.get("/kinds", response_model=list[KindView])
async def list_kinds(_: Reader, kinds: RegistryDep) -> list[KindView]:
    """The installed device kinds with their display labels and those of their reading kinds."""
    return kind_views(kinds)


@router.get("/labels", response_model=LabelsView)
async def all_labels(_: Reader, kinds: RegistryDep) -> LabelsView:
    """Labels of kinds, reading kinds, case stages, case actions and case history events, in one answer."""
    views = kind_views(kinds)
    return LabelsView(
        kind={v.kind: v.label for v in views},
        reading={r: label for v in views for r, label in v.readings.items()},
        stage={stage.value: _view(labels) for stage, labels in STAGE_LABELS.items()},
        action={action.value: _view(labels) for action, labels in ACTION_LABELS.items()},
        case_event={event: _view(labels) for event, labels in EVENT_LABELS.items()},
    )
