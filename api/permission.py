"""Permissions, and which roles hold them. Every route names the one permission it needs."""

from __future__ import annotations

from enum import StrEnum

from sharpeye.role import Role


class Permission(StrEnum):
    self_service = "self:manage"  # one's own identity and password; every role has it
    health_read = "health:read"
    alarms_read = "alarms:read"
    alarms_act = "alarms:act"
    cases_read = "cases:read"
    cases_act = "cases:act"
    devices_read = "devices:read"
    devices_write = "devices:write"
    devices_control = "devices:control"  # reboot, recording, guard/unguard of GB/T 28181 devices; fence arming
    ptz_control = "ptz:control"  # pan/tilt/zoom and presets of GB/T 28181 channels
    deadletters_read = "deadletters:read"
    users_admin = "users:admin"
    reports_create = "reports:create"  # report a case from the field app (one-click report, offline queue)
    tasks_act = "tasks:act"  # one's own tasks: list, sign for (签收), feed back with photos and position
    patrols_write = "patrols:write"  # one's own 巡查 patrols and their GPS track
    patrols_read = "patrols:read"  # everyone's patrols and tracks (within scope)
    push_subscribe = "push:subscribe"  # Web Push on this browser or phone: alarms and cases, or one's new tasks


P = Permission
_ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.admin: frozenset(Permission),
    Role.supervisor: frozenset(
        {P.health_read, P.alarms_read, P.alarms_act, P.cases_read, P.cases_act, P.devices_read, P.deadletters_read}
        | {P.reports_create, P.patrols_read, P.ptz_control, P.devices_control, P.push_subscribe}
    ),
    Role.operator: frozenset(
        {P.health_read, P.alarms_read, P.alarms_act, P.cases_read, P.cases_act, P.devices_read, P.ptz_control}
        | {P.reports_create, P.patrols_read, P.push_subscribe}
    ),
    Role.department_handler: frozenset({P.health_read, P.cases_read, P.cases_act, P.tasks_act, P.push_subscribe}),
    Role.integrator: frozenset({P.health_read, P.devices_read, P.devices_write, P.deadletters_read}),
    Role.viewer: frozenset(
        {P.health_read, P.alarms_read, P.cases_read, P.devices_read, P.patrols_read, P.push_subscribe}
    ),
    # The field app's people: exactly what the phone needs, nothing of the console.
    Role.grid_worker: frozenset({P.reports_create, P.tasks_act, P.patrols_write, P.push_subscribe}),
    Role.handler: frozenset({P.tasks_act, P.push_subscribe}),
}
ROLE_PERMISSIONS = {role: perms | {P.self_service} for role, perms in _ROLE_PERMISSIONS.items()}


def allowed(role: Role, permission: Permission) -> bool:
    return permission in ROLE_PERMISSIONS[role]
