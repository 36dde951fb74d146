// @ts-check
// ECharts for the console's charts (统计, 大屏). It is not part of the console: `sharpeye assets install` puts the
// pinned npm release into the data dir and the hub serves it under /assets/echarts/ (no CDN). ``echarts()`` asks
// the hub whether it is there and loads it once; null when it is not (the caller says so or draws without it).
import { api } from "./api.js";

/** @typedef {{ setOption: (option: object, notMerge?: boolean) => void, resize: () => void, dispose: () => void }} Chart */
/** @typedef {{ init: (el: HTMLElement, theme?: string | null, opts?: object) => Chart }} ECharts */

const SCRIPT = "/assets/echarts/dist/echarts.min.js";

/** @type {Promise<ECharts> | null} */
let loading = null;
/** @type {string} */
let hint = "";

/** How to install ECharts, as the hub says (after ``echarts()`` found it missing). */
export function installHint() { return hint; }

/** @returns {Promise<ECharts>} */
function load() {
  if (!loading) {
    loading = new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = SCRIPT;
      script.onload = () => {
        const found = /** @type {{ echarts?: ECharts }} */ (/** @type {unknown} */ (window)).echarts;
        if (found) resolve(found); else reject(new Error("echarts.min.js did not define echarts"));
      };
      script.onerror = () => { loading = null; reject(new Error(`${SCRIPT} could not be loaded`)); };
      document.head.append(script);
    });
  }
  return loading;
}

/** ECharts, or null when the hub has not got it installed. @returns {Promise<ECharts | null>} */
export async function echarts() {
  if (loading) return loading;
  /** @type {{ packages: { name: string, installed: boolean }[], hint: string }} */
  const assets = await api("/api/assets");
  hint = assets.hint;
  if (!assets.packages.some((p) => p.name === "echarts" && p.installed)) return null;
  return load();
}
