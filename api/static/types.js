// @ts-check
// Shapes of what the hub's API answers, as far as the console reads them (JSDoc types only: no code).

/**
 * @typedef {object} Alarm
 * @property {string} id
 * @property {string} rule_id
 * @property {string} device_id
 * @property {string | null} [channel]
 * @property {string} severity
 * @property {string} state
 * @property {string} title
 * @property {string} place
 * @property {number} count
 * @property {string} first_seen
 * @property {string} last_seen
 * @property {string[]} cameras
 * @property {string[]} [evidence]
 * @property {string | null} [owner] the operator working it (user:<name>)
 * @property {Record<string, { actor: string, at: string }>} [steps] ticked steps of its procedure
 * @property {string | null} [verdict] 研判: pending, escalated, review, confirmed, false_alarm; null when not asked
 */

/**
 * @typedef {object} AlarmDetail
 * @property {Alarm} alarm
 * @property {string | null} case_id
 * @property {{ at: string, action: string, actor: string, note: string }[]} history
 */

/** @typedef {{ type: string, alarm: string, case?: string }} AlarmChange case: the case opened (type case_opened) */

/**
 * @typedef {object} OrgUnit
 * @property {string} id
 * @property {string} name
 * @property {OrgUnit[]} [children]
 */

/**
 * @typedef {object} DeviceSpot
 * @property {string} id
 * @property {string} kind
 * @property {string} name
 * @property {string} grid
 * @property {number | null} x
 * @property {number | null} y
 * @property {number | null} [lon] WGS-84
 * @property {number | null} [lat] WGS-84
 * @property {string} [source] config, gb28181 (a catalog channel), api
 * @property {string[]} cameras
 * @property {{ id: string, name: string }[]} zones
 */

/**
 * @typedef {object} Site
 * @property {string} timezone
 * @property {{ url: string, bounds?: import("./geomap.js").GeoBounds | null } | null} plan
 * @property {import("./geomap.js").MapSettings} [map] the geographic map's tiles and start view
 * @property {OrgUnit} org
 * @property {{ id: string, name: string }[]} departments
 * @property {DeviceSpot[]} devices
 */

/**
 * @typedef {object} DeviceHealth
 * @property {string} id
 * @property {string} name
 * @property {string} kind
 * @property {string} grid
 * @property {string} state
 * @property {string | null} last_seen
 * @property {number} messages
 * @property {number} errors
 * @property {string | null} last_error
 * @property {Record<string, unknown>} [config] the device's config (a camera's ``url``...)
 */

/**
 * @typedef {object} Case
 * @property {string} id
 * @property {string} title
 * @property {string} category
 * @property {string} stage
 * @property {string | null} department
 * @property {string | null} light
 * @property {string | null} due_at
 * @property {string} created_at
 * @property {string[]} alarm_ids
 * @property {{ lat: number, lon: number } | null} [location] WGS-84
 * @property {{ department: string, done_at: string | null, note: string }[]} [assists] co-handling (协办)
 */

/**
 * @typedef {object} CaseEvent
 * @property {string} at
 * @property {string} action
 * @property {string} actor
 * @property {string | null} from_stage
 * @property {string} to_stage
 * @property {string} note
 */

/** @typedef {{ case: Case, history: CaseEvent[], actions?: string[] }} CaseDetail */

/** @typedef {{ username: string, role: string, permissions: string[] }} User */

export {};
