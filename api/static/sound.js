// @ts-check
// The alarm tone, made with WebAudio (no audio file). Browsers allow sound only after a user gesture: the
// context is created on the first click or key press (signing in is one).
/** @type {AudioContext | null} */
let ctx = null;
export let muted = localStorage.getItem("sharpeye.muted") === "1";
export let played = 0;

export function unlock() {
  if (!ctx && window.AudioContext) ctx = new AudioContext();
  if (ctx && ctx.state === "suspended") ctx.resume();
}

/** @param {boolean} value */
export function setMuted(value) { muted = value; localStorage.setItem("sharpeye.muted", value ? "1" : "0"); }

/**
 * Two-tone siren pulses; critical alarms repeat three times.
 * @param {string} severity
 */
export function alarmTone(severity) {
  if (muted) return;
  played += 1;
  if (!ctx) return;
  const repeats = severity === "critical" ? 3 : 1;
  const start = ctx.currentTime + 0.02;
  for (let i = 0; i < repeats; i++) {
    for (const [offset, freq] of [[0, 880], [0.25, 660]]) {
      const osc = ctx.createOscillator(); const gain = ctx.createGain();
      osc.type = "square"; osc.frequency.value = freq;
      const t0 = start + i * 0.6 + offset;
      gain.gain.setValueAtTime(0.0001, t0);
      gain.gain.exponentialRampToValueAtTime(0.2, t0 + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, t0 + 0.22);
      osc.connect(gain).connect(ctx.destination); osc.start(t0); osc.stop(t0 + 0.25);
    }
  }
}
