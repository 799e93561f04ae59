// The Demand Management page. It reads the app's state from the node that serves it, draws it,
// and keeps it current from the node's signal stream. It talks to nothing but that node.
//
// The API token comes from the URL fragment (…/app/demand/#token=…): a fragment never leaves the
// browser, so the token is not in the server's logs or in a Referer header. A node makes a new
// token each time it starts: a tab opened before a restart gets 401 and asks for the new link.

const TOKEN = new URLSearchParams(location.hash.slice(1)).get("token") ?? "";
const STATE_PATH = "/v1/apps/demand";
const SETTINGS_PATH = "/v1/apps/demand/settings";
const RETRY_FIRST_MS = 1000;
const RETRY_MAX_MS = 30000;
const MAX_ROWS = 100;
const DEFAULT_INTERVAL_US = 300e6;
const SVG_NS = "http://www.w3.org/2000/svg";
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const MINUTE_MS = 60000;
const DAY_MS = 24 * 60 * MINUTE_MS;
// Steps for the time axis, in minutes: the smallest that keeps the labels apart is used.
const TIME_STEPS_MIN = [5, 10, 15, 30, 60, 120, 180, 240, 360, 720, 1440];
const TIME_LABEL_PX = 64;
const NEM_OFFSET_S = 36000;

const $ = (id) => document.getElementById(id);

// The prices drawn last (and how to show them), to redraw when the chart's size changes.
let shownPrices = [];
let shownFeed = {};

// Once the node refused the token, nothing is retried: only a new link helps.
let linkRefused = false;
// Whether the token ever worked (a refusal then means the node restarted).
let tokenWorked = false;

// Whether the user has typed a threshold not yet saved: live updates must not overwrite it.
let thresholdEdited = false;

// ---------------------------------------------------------------------------------- the API

// The node refused the token (HTTP 401): a wrong link, or a node restarted since it was opened.
class TokenRefused extends Error {}

async function api(path, options = {}) {
  const response = await fetch(path, {
    ...options,
    cache: "no-store",
    headers: { Authorization: `Bearer ${TOKEN}`, "Content-Type": "application/json" },
  });
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON: the status says enough
  }
  if (response.status === 401) {
    throw new TokenRefused(body?.error ?? "the node refused this page's token");
  }
  if (!response.ok) {
    throw new Error(body?.error ?? `the node answered ${response.status} ${response.statusText}`);
  }
  tokenWorked = true;
  return body;
}

// Read the state and draw it; true when the node answered (false: say why, and on a refused
// token stop and ask for the new link).
async function refresh() {
  try {
    render(await api(STATE_PATH));
    showProblem(null);
    return true;
  } catch (error) {
    if (error instanceof TokenRefused) needNewLink();
    else showProblem(`Cannot read the plug's state: ${error.message}`);
    return false;
  }
}

// What a refused token means and how to get a working link (the node prints the page's
// address, with its token, when it starts).
function needNewLink() {
  linkRefused = true;
  setConnection("new link needed", "refused");
  document.body.dataset.link = "refused"; // what is still shown is as it was, not live
  const why = tokenWorked
    ? "The node no longer accepts this page's token: it has restarted, and each start makes " +
      "a new token."
    : "The node refused this page's token.";
  const box = $("problem");
  const title = document.createElement("strong");
  title.textContent = "New link needed. ";
  box.replaceChildren(
    title,
    `${why} Open the page with the link the node prints when it starts ` +
      "(\"page\": …/app/demand/#token=…), or build it from api and token in node.json in the " +
      "node's data directory.",
  );
  box.hidden = false;
}

// ------------------------------------------------------------------------------ rendering

function render(state) {
  const feed = state.feed ?? {};
  renderPlug(state.plug);
  renderAlert(state.alert);
  renderNotice(state.notice);
  renderFeed(feed);
  renderSettings(state.settings);
  renderEarnings(state, feed);
  renderCurrentPrice(state.prices ?? [], feed);
  shownPrices = state.prices ?? [];
  shownFeed = feed;
  drawChart($("price-chart"), shownPrices, shownFeed);
  renderOffPeriods(state.off_periods ?? [], state.rewarded !== false);
}

function renderPlug(plug) {
  const badge = $("plug-state");
  const on = plug?.on;
  badge.textContent = on === true ? "ON" : on === false ? "OFF" : "?";
  badge.dataset.on = String(on);
  $("plug-power").textContent =
    typeof plug?.power_w === "number" ? `${short(plug.power_w, 1)} W` : "power unknown";
  $("plug-reason").textContent = plug?.reason ? String(plug.reason).replaceAll("_", " ") : "";
}

function renderAlert(text) {
  const box = $("alert");
  box.hidden = !text;
  box.textContent = text ? `Alert: ${text}` : "";
}

function renderNotice(text) {
  const box = $("notice");
  box.hidden = !text;
  box.textContent = text ? `The app is ${text}.` : "";
}

function showProblem(text) {
  if (linkRefused) return; // that message stays until the page is opened with a new link
  const box = $("problem");
  box.hidden = !text;
  box.textContent = text ?? "";
}

function priceUnit(feed) {
  return feed?.price_unit ?? "$/MWh";
}

function moneySign(feed) {
  return feed?.money_sign ?? "$";
}

function renderFeed(feed) {
  $("feed-source").textContent = feed?.source ?? "unknown";
  const where = feed?.region ? `${feed.region}, ` : "";
  $("feed-unit").textContent = `(${where}in ${priceUnit(feed)})`;
  const hours = (feed?.utc_offset_s ?? NEM_OFFSET_S) / 3600;
  const zone = `UTC${hours < 0 ? "−" : "+"}${Math.abs(hours)}`;
  $("chart-unit").textContent = `(in ${priceUnit(feed)}; times in market time, ${zone})`;
  const status = $("feed-status");
  status.textContent = feed?.status ?? "unknown";
  status.dataset.status = feed?.status ?? "unknown";
}

function renderSettings(settings) {
  if (typeof settings?.threshold_pct !== "number") return;
  $("threshold-value").textContent = `${short(settings.threshold_pct, 2)} %`;
  const input = $("threshold-input");
  if (!thresholdEdited && document.activeElement !== input) {
    input.value = String(settings.threshold_pct);
  }
}

// Two figures of credits, named apart: what this plug's rule earned, and what the rewarder
// paid into the wallet (they differ while periods wait to be paid, or if the two value a
// reduction differently), then the wallet's own balance.
function renderEarnings(state, feed) {
  const symbol = state.symbol ?? "";
  $("credits").textContent = state.credits ?? credits(state.credits_mc, symbol);
  const report = state.report ?? {};
  const rewarded = state.rewarded !== false;
  $("paid").textContent = rewarded ? state.settled ?? credits(state.settled_mc, symbol) : "–";
  $("paid-count").textContent = rewarded
    ? `(${report.periods_paid ?? 0} of ${report.periods_to_pay ?? 0} off periods)`
    : "(no rewarder pays this plug)";
  const wallet = state.wallet ?? {};
  const balance = $("balance");
  balance.textContent = wallet.balance ?? "not known";
  balance.title = wallet.problem ?? "";
  $("kwh-avoided").textContent =
    typeof state.kwh_avoided === "number" ? `${short(state.kwh_avoided, 3)} kWh` : "–";
  $("cost-avoided").textContent =
    typeof state.cost_avoided === "number" ? money(state.cost_avoided, moneySign(feed)) : "–";
  renderPaidNote(state.off_periods ?? [], symbol, rewarded);
}

// When the rewarder paid settled periods otherwise than the rule valued them, say so.
function renderPaidNote(periods, symbol, rewarded) {
  const settled = periods.filter((p) => p.settled && typeof p.paid_mc === "number");
  const earned = settled.reduce((sum, p) => sum + (p.credits_mc ?? 0), 0);
  const paid = settled.reduce((sum, p) => sum + p.paid_mc, 0);
  const note = $("paid-note");
  note.hidden = !rewarded || earned === paid;
  note.textContent = note.hidden
    ? ""
    : `For the periods paid so far the rule earned ${credits(earned, symbol)} and the wallet ` +
      `received ${credits(paid, symbol)}.`;
}

function credits(mc, symbol) {
  return typeof mc === "number" ? `${(mc / 1000).toFixed(3)} ${symbol}`.trim() : "–";
}

// Money of the market: cents, or hundredths of a cent for the small sums one plug avoids.
function money(amount, sign) {
  const digits = Math.abs(amount) >= 1 ? 2 : 4;
  return `${amount < 0 ? "-" : ""}${sign}${Math.abs(amount).toFixed(digits)}`;
}

function renderCurrentPrice(prices, feed) {
  const last = prices.at(-1);
  $("current-price").textContent =
    typeof last?.price === "number"
      ? `${priceText(last.price, feed)} (interval ending ${clock(last.time)})`
      : "no price yet";
}

// A price with its unit: "$131.20/MWh", "-$12.00/MWh".
function priceText(price, feed) {
  const sign = moneySign(feed);
  return `${price < 0 ? "-" : ""}${sign}${Math.abs(price).toFixed(2)}/MWh`;
}

function renderOffPeriods(periods, rewarded) {
  const rows = periods
    .slice(-MAX_ROWS)
    .reverse()
    .map((period) => {
      const minutes = period.end ? (Date.parse(period.end) - Date.parse(period.start)) / 60000 : null;
      return tableRow([
        stamp(period.start),
        period.end ? sameDayStamp(period.end, period.start) : "still off",
        Number.isFinite(minutes) ? short(minutes, 0) : "–",
        typeof period.kwh_avoided === "number" ? short(period.kwh_avoided, 3) : "–",
        typeof period.credits_mc === "number" ? (period.credits_mc / 1000).toFixed(3) : "–",
        paidCell(period, rewarded),
      ]);
    });
  $("off-periods").replaceChildren(...rows);
  $("off-periods-empty").hidden = rows.length > 0;
}

// What the rewarder paid for a period, or why nothing (yet).
function paidCell(period, rewarded) {
  if (typeof period.paid_mc === "number") return (period.paid_mc / 1000).toFixed(3);
  if (!rewarded || !period.end || !period.credits_mc) return "–";
  return "waiting";
}

function tableRow(cells) {
  const row = document.createElement("tr");
  for (const text of cells) {
    const cell = document.createElement("td");
    cell.textContent = text;
    row.append(cell);
  }
  return row;
}

// A number without needless trailing zeros, locale-independent (tests read these).
function short(value, digits) {
  return String(Number(value.toFixed(digits)));
}

// Times are shown as the market states them (NEM time for AEMO), not in the browser's zone.
function parts(iso) {
  return /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(iso ?? "");
}

function clock(iso) {
  const m = parts(iso);
  return m ? `${m[4]}:${m[5]}` : String(iso);
}

function stamp(iso) {
  const m = parts(iso);
  return m ? `${Number(m[3])} ${MONTHS[Number(m[2]) - 1]} ${m[4]}:${m[5]}` : String(iso);
}

// The end of a period: its time alone when it is on the day the period started.
function sameDayStamp(iso, since) {
  const [a, b] = [parts(iso), parts(since)];
  return a && b && a[1] === b[1] && a[2] === b[2] && a[3] === b[3] ? clock(iso) : stamp(iso);
}

// The offset of market time from UTC in ms: the feed's, else the one the times carry.
function offsetMs(feed, prices) {
  if (Number.isFinite(feed?.utc_offset_s)) return feed.utc_offset_s * 1000;
  const m = /([+-])(\d{2}):(\d{2})$/.exec(prices[0]?.time ?? "");
  if (!m) return NEM_OFFSET_S * 1000;
  return (m[1] === "-" ? -1 : 1) * (Number(m[2]) * 60 + Number(m[3])) * MINUTE_MS;
}

// -------------------------------------------------------------------------------- the chart

// Price, average and threshold are step lines (each holds for a whole interval); intervals in
// which the plug was off are shaded. The value axis always takes in zero, on round gridlines,
// so a negative price stays inside the plot above a marked zero line; the time axis has a
// label every round step that fits, with the date where the day changes.
// The drawing is sized to the element, so its text stays readable on a phone.
function drawChart(svg, prices, feed) {
  const width = Math.max(280, Math.round(svg.clientWidth || 640));
  const height = Math.round(Math.min(Math.max(width * 0.42, 220), 320));
  const box = { left: 52, right: width - 10, top: 22, bottom: height - 40 };
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.replaceChildren();
  if (prices.length === 0) {
    svg.append(svgText(width / 2, height / 2, "waiting for prices…", "middle"));
    return;
  }
  const step = intervalUs(prices);
  const start = prices[0].end_us - step;
  const end = prices.at(-1).end_us;
  const values = prices.flatMap((p) => [p.price, p.average, p.threshold]).filter(Number.isFinite);
  const scale = valueScale(values);
  const x = (us) => box.left + ((us - start) / (end - start)) * (box.right - box.left);
  const y = (v) => box.top + ((scale.high - v) / (scale.high - scale.low)) * (box.bottom - box.top);

  const clip = svgElement("clipPath", { id: "plot-area" });
  clip.append(svgElement("rect", {
    x: box.left, y: box.top, width: box.right - box.left, height: box.bottom - box.top,
  }));
  svg.append(clip);
  for (const [from, to] of offRuns(prices, step)) {
    svg.append(svgElement("rect", {
      x: x(from), y: box.top, width: x(to) - x(from), height: box.bottom - box.top,
      class: "off", "data-series": "off",
    }));
  }
  for (const v of scale.ticks) {
    svg.append(svgElement("line", { x1: box.left, x2: box.right, y1: y(v), y2: y(v), class: "grid" }));
    svg.append(svgText(box.left - 6, y(v) + 4, short(v, scale.digits), "end"));
  }
  svg.append(svgElement("line", {
    x1: box.left, x2: box.right, y1: y(0), y2: y(0), class: "zero", "data-series": "zero",
  }));
  const unit = svgText(box.left - 6, 12, priceUnit(feed), "end");
  unit.setAttribute("class", "axis-unit");
  svg.append(unit);
  drawTimeAxis(svg, box, x, start, end, offsetMs(feed, prices));
  for (const series of ["threshold", "average", "price"]) {
    const d = stepPath(prices, series, step, x, y);
    svg.append(svgElement("path", { d, class: series, "data-series": series, "clip-path": "url(#plot-area)" }));
  }
}

// Round bounds and gridlines for values that always include zero.
function valueScale(values) {
  let low = Math.min(0, ...values);
  let high = Math.max(0, ...values);
  if (high === low) high = low + 1;
  const unit = roundStep((high - low) / 4);
  const from = Math.floor(low / unit);
  const to = Math.max(Math.ceil(high / unit), from + 1);
  const ticks = [];
  for (let i = from; i <= to; i++) ticks.push(i * unit);
  const digits = Math.max(0, -Math.floor(Math.log10(unit)));
  return { low: from * unit, high: to * unit, ticks, digits };
}

// The smallest of 1, 2, 5 × a power of ten that is at least raw.
function roundStep(raw) {
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * magnitude).find((u) => u >= raw * (1 - 1e-9));
}

// Labels at round market-time steps (every 5 minutes up to a day), as many as fit; the first
// label and each first one of a new day carry the date too, and midnight gets a gridline.
function drawTimeAxis(svg, box, x, startUs, endUs, offset) {
  svg.append(svgElement("line", { x1: box.left, x2: box.right, y1: box.bottom, y2: box.bottom, class: "axis" }));
  const fit = Math.max(2, Math.floor((box.right - box.left) / TIME_LABEL_PX));
  for (const tick of timeTicks(startUs / 1000, endUs / 1000, offset, fit)) {
    const at = x(tick.ms * 1000);
    svg.append(svgElement("line", { x1: at, x2: at, y1: box.bottom, y2: box.bottom + 4, class: "axis" }));
    if (tick.midnight) {
      svg.append(svgElement("line", { x1: at, x2: at, y1: box.top, y2: box.bottom, class: "day" }));
    }
    // a label at either end is kept whole inside the drawing
    const anchor = at > box.right - 18 ? "end" : at < box.left + 18 ? "start" : "middle";
    const textAt = anchor === "end" ? box.right : anchor === "start" ? box.left - 14 : at;
    const label = svgText(textAt, box.bottom + 16, tick.time, anchor);
    label.setAttribute("class", "time-label");
    svg.append(label);
    if (tick.date) {
      const date = svgText(textAt, box.bottom + 30, tick.date, anchor);
      date.setAttribute("class", "date-label");
      date.setAttribute("data-date", tick.date);
      svg.append(date);
    }
  }
}

// Ticks between startMs and endMs (UTC ms) on round steps of market time (UTC + offset ms), at
// most maxTicks of them: [{ms, time: "HH:MM", date: "18 Jan" | null, midnight}].
function timeTicks(startMs, endMs, offset, maxTicks) {
  const span = endMs - startMs;
  const stepMin = TIME_STEPS_MIN.find((m) => span / (m * MINUTE_MS) <= maxTicks) ?? 1440;
  const stepMs = stepMin * MINUTE_MS;
  const ticks = [];
  let lastDay = null;
  for (let local = Math.ceil((startMs + offset) / stepMs) * stepMs; local <= endMs + offset; local += stepMs) {
    const when = new Date(local); // read in UTC: it already is market time
    const day = Math.floor(local / DAY_MS);
    const hh = String(when.getUTCHours()).padStart(2, "0");
    const mm = String(when.getUTCMinutes()).padStart(2, "0");
    ticks.push({
      ms: local - offset,
      time: `${hh}:${mm}`,
      date: day !== lastDay ? `${when.getUTCDate()} ${MONTHS[when.getUTCMonth()]}` : null,
      midnight: local % DAY_MS === 0 && ticks.length > 0,
    });
    lastDay = day;
  }
  return ticks;
}

function intervalUs(prices) {
  let best = Infinity;
  for (let i = 1; i < prices.length; i++) {
    const gap = prices[i].end_us - prices[i - 1].end_us;
    if (gap > 0 && gap < best) best = gap;
  }
  return Number.isFinite(best) ? best : DEFAULT_INTERVAL_US;
}

function offRuns(prices, step) {
  const runs = [];
  for (const p of prices) {
    if (p.on !== false) continue;
    const last = runs.at(-1);
    if (last && last[1] === p.end_us - step) last[1] = p.end_us;
    else runs.push([p.end_us - step, p.end_us]);
  }
  return runs;
}

// A path that breaks wherever the value is missing or an interval is missing.
function stepPath(prices, key, step, x, y) {
  let d = "";
  let previousEnd = null;
  for (const p of prices) {
    const v = p[key];
    if (!Number.isFinite(v)) {
      previousEnd = null;
      continue;
    }
    const from = p.end_us - step;
    d += previousEnd === from ? `V${y(v).toFixed(1)}` : `M${x(from).toFixed(1)},${y(v).toFixed(1)}`;
    d += `H${x(p.end_us).toFixed(1)}`;
    previousEnd = p.end_us;
  }
  return d;
}

function svgElement(name, attributes) {
  const element = document.createElementNS(SVG_NS, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  return element;
}

function svgText(x, y, text, anchor) {
  const element = svgElement("text", { x, y, "text-anchor": anchor });
  element.textContent = text;
  return element;
}

// --------------------------------------------------------------------------- the threshold

async function saveThreshold(event) {
  event.preventDefault();
  const input = $("threshold-input");
  const button = $("threshold-save");
  const value = input.valueAsNumber;
  if (!Number.isFinite(value)) {
    showMessage("Enter the threshold as a number (a percentage).", true);
    return;
  }
  button.disabled = true;
  showMessage("Saving…", false);
  try {
    const answer = await api(SETTINGS_PATH, {
      method: "PUT",
      body: JSON.stringify({ threshold_pct: value }),
    });
    const settings = answer?.settings ?? answer;
    thresholdEdited = false;
    input.value = String(settings.threshold_pct);
    renderSettings(settings);
    showMessage(`Saved: the plug now sits out peaks over ${short(settings.threshold_pct, 2)} %.`, false);
  } catch (error) {
    if (error instanceof TokenRefused) needNewLink();
    showMessage(`Not saved: ${error.message}`, true);
  } finally {
    button.disabled = false;
  }
}

function showMessage(text, isError) {
  const message = $("threshold-message");
  message.textContent = text;
  message.classList.toggle("error", isError);
  $("threshold-input").setAttribute("aria-invalid", String(isError));
}

// --------------------------------------------------------------------------- live updates

// The app's events as the node's signal hub sends them: {"type": "signal", "zome": "demand",
// "name", "payload"}. An event nested in "value" (as zome signals carry theirs) is read too.
function demandEvent(message) {
  const inner = message?.value !== null && typeof message?.value === "object" ? message.value : {};
  const name = message?.name ?? inner.name;
  if (typeof name !== "string" || !name.startsWith("demand.")) return null;
  return { name, payload: message.payload ?? inner.payload ?? {} };
}

function onSignal(text) {
  let message;
  try {
    message = JSON.parse(text);
  } catch {
    return;
  }
  const event = demandEvent(message);
  if (event?.name === "demand.tick") render(event.payload);
  else if (event?.name === "demand.alert") renderAlert(event.payload.alert ?? null);
  else if (message?.dropped_before) refresh(); // this page fell behind: catch up
}

function setConnection(text, status = text) {
  const badge = $("connection");
  badge.textContent = text;
  badge.dataset.status = status;
}

// One socket at a time; when it closes, wait (doubling up to a limit while it will not open, with
// jitter so many pages do not return at once), reconnect and re-read the state to cover what was
// missed meanwhile. A socket cannot tell why it was refused, so a close is followed by a plain
// request: a 401 there means the token is no longer good, and retrying would never help.
function connect(retryMs, isReconnect) {
  if (linkRefused) return;
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const url = `${scheme}//${location.host}/v1/signals?token=${encodeURIComponent(TOKEN)}`;
  const socket = new WebSocket(url);
  let opened = false;
  socket.addEventListener("open", () => {
    opened = true;
    setConnection("live");
    if (isReconnect) refresh();
  });
  socket.addEventListener("message", (message) => onSignal(message.data));
  socket.addEventListener("close", async () => {
    if (linkRefused) return;
    const wait = opened ? RETRY_FIRST_MS : Math.min(retryMs * 2, RETRY_MAX_MS);
    setConnection("reconnecting");
    if (!opened) await refresh(); // why it would not open: a refused token stops here
    if (linkRefused) return;
    setTimeout(() => connect(wait, true), wait * (0.8 + Math.random() * 0.4));
  });
}

function start() {
  $("threshold-form").addEventListener("submit", saveThreshold);
  $("threshold-input").addEventListener("input", () => {
    thresholdEdited = true;
  });
  new ResizeObserver(() => drawChart($("price-chart"), shownPrices, shownFeed)).observe($("price-chart"));
  if (!TOKEN) {
    showProblem(
      "This page needs the node's API token: open it with the link the node printed " +
        "(…/app/demand/#token=…).",
    );
    setConnection("offline");
    return;
  }
  refresh().then(() => connect(RETRY_FIRST_MS, false));
}

start();
