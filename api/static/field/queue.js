// @ts-check
// The outbox: everything the app sends (reports, sign-fors, feedback, track points) is written to IndexedDB
// first and sent from there, oldest first, whenever the network is up. Each entry carries an id made on the phone
// when it was written; the hub treats a resend of the same id as the same request, so an answer lost on the way
// never makes a second case.

const DB_NAME = "sharpeye-field";
const STORE = "outbox";

/**
 * @typedef {{
 *   id: string, kind: "report" | "claim" | "feedback" | "points" | "end", url: string, created: number,
 *   label: string, fields?: Record<string, string>, photos?: Blob[], voice?: Blob, json?: unknown, error?: string
 * }} Entry
 */

/** @type {Promise<IDBDatabase> | null} */
let opened = null;

/** @returns {Promise<IDBDatabase>} */
function db() {
  if (!opened) {
    opened = new Promise((resolve, reject) => {
      const req = indexedDB.open(DB_NAME, 1);
      req.onupgradeneeded = () => { req.result.createObjectStore(STORE, { keyPath: "id" }); };
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
  }
  return opened;
}

/**
 * @template T
 * @param {IDBTransactionMode} mode
 * @param {(store: IDBObjectStore) => IDBRequest<T>} action
 * @returns {Promise<T>}
 */
async function run(mode, action) {
  const tx = (await db()).transaction(STORE, mode);
  const req = action(tx.objectStore(STORE));
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve(req.result);
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error);
  });
}

/** @param {Entry} entry */
export async function put(entry) { await run("readwrite", (s) => s.put(entry)); }

/** @param {string} id */
export async function remove(id) { await run("readwrite", (s) => s.delete(id)); }

/** @returns {Promise<Entry[]>} oldest first */
export async function entries() {
  /** @type {Entry[]} */
  const all = await run("readonly", (s) => s.getAll());
  return all.sort((a, b) => a.created - b.created);
}

/** A random id for an entry (the hub accepts 8-64 letters, digits and dashes). */
export function newId() {
  return crypto.randomUUID();
}
