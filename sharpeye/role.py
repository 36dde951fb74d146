"""The roles of SharpEye's users, shared by access control (api/) and the case flow (governance/)."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    admin = "admin"
    supervisor = "supervisor"
    operator = "operator"
    department_handler = "department_handler"
    integrator = "integrator"
    viewer = "viewer"
    grid_worker = "grid_worker"  # 网格员: reports, and signs for and feeds back the tasks of their grid
    handler = "handler"  # 处置人员: signs for and feeds back the tasks of their department, nothing else
