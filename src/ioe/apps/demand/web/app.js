// The Demand Management page. It reads the app's state from the node that serves it, draws it,
// and keeps it current from the node's signal stream. It talks to nothing but that node.
//
// The API token comes from the URL fragment (…/app/demand/#token=…): a fragment never leaves the
// browser, so the token is not in the server's logs or in a Referer header.

const TOKEN = new URLSearchParams(location.hash.slice(1)).get("token") ?? "";
const STATE_PATH = "/v1/apps/demand";
const SETTINGS_PATH = "/v1/apps/demand/settings";
const RETRY_FIRST_MS = 1000;
const RETRY_MAX_MS = 30000;
const MAX_ROWS = 100;
const DEFAULT_INTERVAL_US = 300e6;
const SVG_NS = "http://www.w3.org/2000/svg";
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

const $ = (id) => document.getElementById(id);

// The prices drawn last, to redraw when the chart's size changes.
let shownPrices = [];

// Whether the user has typed a threshold not yet saved: live updates must not overwrite it.
let thresholdEdited = false;

// ---------------------------------------------------------------------------------- the API

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
  if (!response.ok) {
    throw new Error(body?.error ?? `the node answered ${response.status} ${response.statusText}`);
  }
  return body;
}

async function refresh() {
  try {
    render(await api(STATE_PATH));
    showProblem(null);
  } catch (error) {
    showProblem(`Cannot read the plug's state: ${error.message}`);
  }
}

// ------------------------------------------------------------------------------ rendering

function render(state) {
  renderPlug(state.plug);
  renderAlert(state.alert);
  renderFeed(state.feed);
  renderSettings(state.settings);
  renderEarnings(state);
  renderCurrentPrice(state.prices ?? []);
  shownPrices = state.prices ?? [];
  drawChart($("price-chart"), shownPrices);
  renderOffPeriods(state.off_periods ?? []);
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

function showProblem(text) {
  const box = $("problem");
  box.hidden = !text;
  box.textContent = text ?? "";
}

function renderFeed(feed) {
  $("feed-source").textContent = feed?.source ?? "unknown";
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

function renderEarnings(state) {
  $("credits").textContent =
    state.credits ?? (typeof state.credits_mc === "number" ? `${state.credits_mc / 1000}` : "–");
  $("kwh-avoided").textContent =
    typeof state.kwh_avoided === "number" ? `${short(state.kwh_avoided, 3)} kWh` : "–";
  $("cost-avoided").textContent =
    typeof state.cost_avoided === "number" ? short(state.cost_avoided, 4) : "–";
}

function renderCurrentPrice(prices) {
  const last = prices.at(-1);
  $("current-price").textContent =
    typeof last?.price === "number"
      ? `${last.price.toFixed(2)} /MWh (interval ending ${clock(last.time)})`
      : "no price yet";
}

function renderOffPeriods(periods) {
  const rows = periods
    .slice(-MAX_ROWS)
    .reverse()
    .map((period) => {
      const minutes = period.end ? (Date.parse(period.end) - Date.parse(period.start)) / 60000 : null;
      return tableRow([
        stamp(period.start),
        period.end ? stamp(period.end) : "still off",
        Number.isFinite(minutes) ? short(minutes, 0) : "–",
        typeof period.kwh_avoided === "number" ? short(period.kwh_avoided, 3) : "–",
        typeof period.credits_mc === "number" ? short(period.credits_mc / 1000, 3) : "–",
      ]);
    });
  $("off-periods").replaceChildren(...rows);
  $("off-periods-empty").hidden = rows.length > 0;
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

// -------------------------------------------------------------------------------- the chart

// Price, average and threshold are step lines (each holds for a whole interval); intervals in
// which the plug was off are shaded.
// The drawing is sized to the element, so its text stays readable on a phone.
function drawChart(svg, prices) {
  const width = Math.max(280, Math.round(svg.clientWidth || 640));
  const height = Math.round(Math.min(Math.max(width * 0.42, 200), 300));
  const box = { left: 48, right: width - 8, top: 10, bottom: height - 28 };
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
  let low = Math.min(0, ...values);
  let high = Math.max(...values);
  if (high === low) high = low + 1;
  high += (high - low) * 0.05;
  const x = (us) => box.left + ((us - start) / (end - start)) * (box.right - box.left);
  const y = (v) => box.top + ((high - v) / (high - low)) * (box.bottom - box.top);

  for (const [from, to] of offRuns(prices, step)) {
    const rect = svgElement("rect", {
      x: x(from), y: box.top, width: x(to) - x(from), height: box.bottom - box.top,
      class: "off", "data-series": "off",
    });
    svg.append(rect);
  }
  for (const v of ticks(low, high)) {
    svg.append(svgElement("line", { x1: box.left, x2: box.right, y1: y(v), y2: y(v), class: "grid" }));
    svg.append(svgText(box.left - 6, y(v) + 4, short(v, 0), "end"));
  }
  for (const p of [prices[0], prices[Math.floor(prices.length / 2)], prices.at(-1)]) {
    const at = Math.min(Math.max(x(p.end_us), box.left + 20), box.right - 20);
    svg.append(svgText(at, height - 8, clock(p.time), "middle"));
  }
  for (const series of ["threshold", "average", "price"]) {
    const d = stepPath(prices, series, step, x, y);
    svg.append(svgElement("path", { d, class: series, "data-series": series }));
  }
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

// About four round values between low and high for the grid.
function ticks(low, high) {
  const raw = (high - low) / 4;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const unit = [1, 2, 5, 10].map((m) => m * magnitude).find((u) => u >= raw);
  const out = [];
  for (let v = Math.ceil(low / unit) * unit; v <= high && out.length < 10; v += unit) out.push(v);
  return out;
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

function setConnection(text) {
  const badge = $("connection");
  badge.textContent = text;
  badge.dataset.status = text;
}

// One socket at a time; when it closes, wait (doubling up to a limit while it will not open, with
// jitter so many pages do not return at once), reconnect and re-read the state to cover what was
// missed meanwhile.
function connect(retryMs, isReconnect) {
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
  socket.addEventListener("close", () => {
    const wait = opened ? RETRY_FIRST_MS : Math.min(retryMs * 2, RETRY_MAX_MS);
    setConnection("reconnecting");
    setTimeout(() => connect(wait, true), wait * (0.8 + Math.random() * 0.4));
  });
}

function start() {
  $("threshold-form").addEventListener("submit", saveThreshold);
  $("threshold-input").addEventListener("input", () => {
    thresholdEdited = true;
  });
  new ResizeObserver(() => drawChart($("price-chart"), shownPrices)).observe($("price-chart"));
  if (!TOKEN) {
    showProblem(
      "This page needs the node's API token: open it with the link the node printed " +
        "(…/app/demand/#token=…).",
    );
    setConnection("offline");
    return;
  }
  refresh();
  connect(RETRY_FIRST_MS, false);
}

start();
