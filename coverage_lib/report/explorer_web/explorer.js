/* D²TL Coverage: the live explorer (the book's "Ask the models" page).
 *
 * Runs the Selector's two backbones in the reader's browser, from the run's checkpoints as
 * coverage_lib.report.explorer exports them (model.json and weights.bin beside this file).
 * No server code, no kernel, no request outside the book's own files. The numerics (the
 * forward passes of coverage_lib.models and the Selector's cascade, in float64 from the
 * float32 weights) are explorer_core.js's, beside this file: loaded here unless the page
 * loaded it first. This file is the page: controls, outputs, sweeps.
 */
(function () {
  "use strict";
  const root = document.getElementById("d2tl-explorer");
  if (!root) return;
  const base = new URL(".", document.currentScript.src);
  const log10 = Math.log10;
  const SWEEP_POINTS = 48;
  const api = { timings: {} };
  window.d2tlExplorer = api;
  let core = null;

  function loadCore() {             // explorer_core.js, from beside this file
    if (window.d2tlExplorerCore) return Promise.resolve(window.d2tlExplorerCore);
    return new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = new URL("explorer_core.js", base).href;
      script.onload = () => (window.d2tlExplorerCore ? resolve(window.d2tlExplorerCore)
        : reject(new Error("explorer_core.js defines no d2tlExplorerCore")));
      script.onerror = () => reject(new Error("explorer_core.js could not be loaded"));
      document.head.appendChild(script);
    });
  }

  // -- the page ----------------------------------------------------------------------------
  const el = (tag, attrs = {}, ...children) => {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    for (const c of children) node.append(c);
    return node;
  };
  const SVG = "http://www.w3.org/2000/svg";
  const svg = (tag, attrs = {}) => {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    return node;
  };
  const fmt = (v, digits = 4) => (Math.abs(v) >= 1e5 || (v !== 0 && Math.abs(v) < 1e-3)
    ? v.toExponential(digits - 1) : Number(v.toPrecision(digits)).toString());
  const rounded = (v) => (Math.abs(v) < 1e-3 ? "0" : String(Number(v.toPrecision(3))));
  const range = (f) => `${rounded(f.trained[0])}–${rounded(f.trained[1])}`;

  function status(text, kind = "info") {
    let node = root.querySelector(".d2tl-status");
    if (!node) node = root.appendChild(el("p", { class: "d2tl-status" }));
    node.className = `d2tl-status d2tl-${kind}`;
    node.textContent = text;
  }

  async function load() {
    const get = async (name) => {
      const response = await fetch(new URL(name, base));
      if (!response.ok) throw new Error(`${name}: HTTP ${response.status}`);
      return response;
    };
    core = await loadCore();
    const M = await (await get("model.json")).json();
    const W = new Float32Array(await (await get(M.weights.file)).arrayBuffer());
    return core.prepare(M, W);
  }

  function controls(M, onChange) {
    const table = el("table", { class: "d2tl-inputs" });
    table.append(el("thead", {}, el("tr", {}, el("th", {}, "feature"), el("th", {}, "value"),
      el("th", {}, ""), el("th", {}, "trained on"))));
    const body = table.appendChild(el("tbody"));
    const inputs = {};
    for (const f of M.features) {
      const row = body.appendChild(el("tr", { "data-feature": f.name }));
      row.append(el("th", { scope: "row" }, f.label + (f.unit ? ` [${f.unit}]` : "")));
      let field, slider = null;
      if (f.options) {
        field = el("select", { class: "d2tl-value", "aria-label": f.label });
        for (const [value, label] of f.options) field.append(el("option", { value: String(value) }, label));
        field.value = String(f.default);
        row.append(el("td", { colspan: "2" }, field));
      } else {
        const log = f.scale === "log";
        const toPos = (v) => 1000 * (log ? (log10(v) - log10(f.low)) / (log10(f.high) - log10(f.low))
          : (v - f.low) / (f.high - f.low));
        const fromPos = (p) => (log ? 10 ** (log10(f.low) + (p / 1000) * (log10(f.high) - log10(f.low)))
          : f.low + (p / 1000) * (f.high - f.low));
        slider = el("input", { type: "range", min: "0", max: "1000", step: "1", class: "d2tl-slider",
          "aria-label": `${f.label} slider` });
        field = el("input", { type: "number", class: "d2tl-value", step: "any", min: String(f.low),
          max: String(f.high), "aria-label": f.label });
        field.value = String(f.default);
        slider.value = String(toPos(f.default));
        const a = Math.max(0, toPos(Math.max(f.trained[0], f.low)) / 10), b = Math.min(100, toPos(Math.min(f.trained[1], f.high)) / 10);
        slider.style.setProperty("--d2tl-trained", `linear-gradient(to right, var(--d2tl-out) ${a}%, var(--d2tl-in) ${a}%, var(--d2tl-in) ${b}%, var(--d2tl-out) ${b}%)`);
        slider.addEventListener("input", () => {
          field.value = String(Number(fromPos(Number(slider.value)).toPrecision(4)));
          onChange(f.name);
        });
        field.addEventListener("change", () => {
          const v = Number(field.value);
          if (Number.isFinite(v)) slider.value = String(Math.min(1000, Math.max(0, toPos(v))));
        });
        row.append(el("td", {}, slider), el("td", {}, field));
      }
      field.addEventListener("change", () => onChange(f.name));
      row.append(el("td", { class: "d2tl-trained" }, f.options && f.name !== "bandwidth_mhz"
        ? "all" : range(f) + (f.unit ? ` ${f.unit}` : "")));
      inputs[f.name] = field;
    }
    return { table, inputs };
  }

  function readLink(M, inputs) {            // -> {x} or {error}
    const x = [];
    for (const f of M.features) {
      const raw = inputs[f.name].value, v = Number(raw);
      if (raw === "" || !Number.isFinite(v))
        return { error: `${f.label}: "${raw}" is not a number`, feature: f.name };
      if (v < f.low || v > f.high)
        return { error: `${f.label}: ${raw} ${f.unit} lies outside what this page spans, ${f.low}–${f.high} ${f.unit}`, feature: f.name };
      x.push(v);
    }
    return { x };
  }

  function outputsTable(M) {
    const S = M.selector, cols = [S.primary, S.backup, "selector"];
    const names = { ...Object.fromEntries(Object.entries(M.models).map(([k, m]) => [k, m.label])), selector: "Selector" };
    const table = el("table", { class: "d2tl-outputs" });
    table.append(el("thead", {}, el("tr", {}, el("th", {}, "target"),
      ...cols.map((c) => el("th", { "data-model": c }, names[c])))));
    const body = table.appendChild(el("tbody"));
    for (const t of M.targets) {
      body.append(el("tr", { "data-target": t.name }, el("th", { scope: "row" }, t.label + (t.unit ? ` [${t.unit}]` : "")),
        ...cols.map((c) => el("td", { "data-model": c, "data-target": t.name }, "…"))));
    }
    return table;
  }

  function describe(M, route) {
    const S = M.selector, names = Object.fromEntries(Object.entries(M.models).map(([k, m]) => [k, m.label]));
    if (route.routed_to === S.primary)
      return `The Selector answers with ${names[S.primary]}: the link lies in the training domain, the answer keeps every physics identity, and the confidence gate scores it ${fmt(route.score, 3)} (${S.score_threshold === null ? "the gate calls the backup for no link" : `the backup is called above ${fmt(S.score_threshold, 3)}`}).`;
    const to = `The Selector sends this link to ${names[S.backup]}`;
    if (route.reason === "out_of_domain")
      return `${to}: out of domain — ${route.feature.label} lies outside the trained ${range(route.feature)}${route.feature.unit ? " " + route.feature.unit : ""}.`;
    if (route.reason === "physics_rule") return `${to}: ${names[S.primary]}'s answer breaks a physics rule (${route.rules.join(", ")}).`;
    return `${to}: low confidence — the gate scores ${names[S.primary]}'s answer ${fmt(route.score, 3)}, above ${fmt(S.score_threshold, 3)} (tolerance ${S.tolerance}).`;
  }

  // -- the sweeps --------------------------------------------------------------------------
  const PANELS = [
    { sweep: "distance", target: "received_power_dbm", title: "received power [dBm] against distance [m]" },
    { sweep: "distance", target: "sinr_db", title: "SINR [dB] against distance [m]" },
    { sweep: "rain", target: "received_power_dbm", title: "received power [dBm] against rain rate [mm/h]" },
    { sweep: "rain", target: "sinr_db", title: "SINR [dB] against rain rate [mm/h]" },
  ];

  function sweepValues(M, kind, x) {
    const i = M.featureIndex[kind === "distance" ? "distance_m" : "rain_rate_mmh"];
    const f = M.features[i];
    const high = kind === "distance" ? core.maxDistance(M.physics, x[M.featureIndex.scenario]) : f.high;
    const values = [];
    for (let k = 0; k < SWEEP_POINTS; k++) {
      const u = k / (SWEEP_POINTS - 1);
      values.push(kind === "distance" ? 10 ** (log10(f.low) + u * (log10(high) - log10(f.low))) : f.low + u * (high - f.low));
    }
    const S = M.selector;
    const curves = {};
    for (const key of [S.primary, S.backup]) {
      curves[key] = core.answerMany(M, key, values.map((v) => { const xi = x.slice(); xi[i] = v; return xi; }));
    }
    return { feature: f, index: i, values, curves, log: kind === "distance" };
  }

  function drawPanel(M, node, panel, sweep, x) {
    const w = 320, h = 190, L = 46, R = 8, T = 22, B = 30;
    node.replaceChildren();
    const S = M.selector, keys = [S.primary, S.backup];
    const xs = sweep.values.map((v) => (sweep.log ? log10(v) : v));
    const ys = keys.flatMap((k) => sweep.curves[k].map((y) => y[M.targetIndex[panel.target]]));
    const [x0, x1] = [xs[0], xs[xs.length - 1]];
    let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
    if (y1 - y0 < 1) { y0 -= 0.5; y1 += 0.5; }
    const px = (v) => L + ((sweep.log ? log10(v) : v) - x0) / (x1 - x0) * (w - L - R);
    const py = (v) => T + (y1 - v) / (y1 - y0) * (h - T - B);
    node.setAttribute("viewBox", `0 0 ${w} ${h}`);
    node.setAttribute("aria-label", panel.title);
    node.append(Object.assign(svg("text", { x: L, y: 13, class: "d2tl-title" }), { textContent: panel.title }));
    const [a, b] = sweep.feature.trained, lo = Math.max(a, sweep.values[0]), hi = Math.min(b, sweep.values[sweep.values.length - 1]);
    if (hi > lo) node.append(svg("rect", { x: px(lo), y: T, width: Math.max(px(hi) - px(lo), 0.5), height: h - T - B, class: "d2tl-band" }));
    node.append(svg("rect", { x: L, y: T, width: w - L - R, height: h - T - B, class: "d2tl-frame" }));
    const ticksX = sweep.log ? [10, 100, 1000, 10000].filter((v) => v >= sweep.values[0] * 0.999 && v <= sweep.values[sweep.values.length - 1] * 1.001)
      : [0, 25, 50, 75, 100, 125, 150].filter((v) => v <= sweep.values[sweep.values.length - 1]);
    for (const v of ticksX) node.append(Object.assign(svg("text", { x: px(v), y: h - B + 13, class: "d2tl-tick", "text-anchor": "middle" }), { textContent: fmt(v, 3) }));
    for (let k = 0; k <= 4; k++) {
      const v = y0 + (k / 4) * (y1 - y0);
      node.append(Object.assign(svg("text", { x: L - 4, y: py(v) + 3, class: "d2tl-tick", "text-anchor": "end" }), { textContent: v.toFixed(Math.abs(y1 - y0) < 10 ? 1 : 0) }));
    }
    const here = x[sweep.index];
    if (here >= sweep.values[0] && here <= sweep.values[sweep.values.length - 1])
      node.append(svg("line", { x1: px(here), x2: px(here), y1: T, y2: h - B, class: "d2tl-here" }));
    for (const key of keys) {
      const d = sweep.values.map((v, k) => `${k ? "L" : "M"}${px(v).toFixed(1)},${py(sweep.curves[key][k][M.targetIndex[panel.target]]).toFixed(1)}`).join("");
      node.append(svg("path", { d, class: "d2tl-curve", stroke: M.models[key].colour, "data-model": key }));
    }
  }

  // -- wiring ------------------------------------------------------------------------------
  async function main() {
    if (location.protocol === "file:") {
      status("This page computes the models' answers in your browser from files next to it "
        + "(model.json, weights.bin), and browsers refuse to read such files from a page opened "
        + "as a file (file://). Serve the book instead: python -m http.server --directory "
        + "_build/html, then open http://localhost:8000/book/explorer.html.", "error");
      root.dataset.state = "file-refused";
      return;
    }
    status("Loading the models (about 2 MB)…");
    let M;
    try {
      M = await load();
    } catch (err) {
      status(`The explorer could not load its models: ${err.message}. It needs the files `
        + `model.json and weights.bin beside explorer.js, served by a web server.`, "error");
      root.dataset.state = "failed";
      return;
    }
    const S = M.selector;
    const legend = el("p", { class: "d2tl-legend" }, ...[S.primary, S.backup].map((k) =>
      el("span", { style: `--d2tl-colour: ${M.models[k].colour}` }, M.models[k].label)),
    el("span", { class: "d2tl-legend-band" }, "training range"));
    const message = el("p", { class: "d2tl-route", role: "status" });
    const outputs = outputsTable(M);
    const panels = PANELS.map(() => svg("svg", { class: "d2tl-plot", role: "img" }));
    const plots = el("div", { class: "d2tl-plots" }, ...panels);
    let sweeps = {};
    const update = (changed) => {
      const link = readLink(M, form.inputs);
      root.querySelectorAll("[data-feature]").forEach((r) => r.classList.toggle("d2tl-invalid", r.dataset.feature === link.feature));
      if (link.error) { status(link.error, "error"); return; }
      const start = performance.now();
      const x = link.x;
      const answers = { [S.primary]: core.answer(M, S.primary, x), [S.backup]: core.answer(M, S.backup, x) };
      const route = core.select(M, x);
      answers.selector = answers[route.routed_to];
      for (const cell of outputs.querySelectorAll("td[data-model]")) {
        const v = answers[cell.dataset.model][M.targets.findIndex((t) => t.name === cell.dataset.target)];
        cell.dataset.value = String(v);
        cell.textContent = fmt(v);
      }
      outputs.querySelectorAll("[data-model]").forEach((c) => c.classList.toggle("d2tl-chosen",
        c.dataset.model === route.routed_to));
      root.dataset.routedTo = route.routed_to;
      root.dataset.reason = route.reason;
      message.textContent = describe(M, route);
      M.features.forEach((f, i) => form.table.querySelector(`[data-feature="${f.name}"]`)
        .classList.toggle("d2tl-outside", x[i] < f.trained[0] || x[i] > f.trained[1]));
      const answered = performance.now();
      for (const kind of ["distance", "rain"]) {
        if (changed === (kind === "distance" ? "distance_m" : "rain_rate_mmh") && sweeps[kind]) continue;
        const t0 = performance.now();
        sweeps[kind] = sweepValues(M, kind, x);
        PANELS.forEach((p, k) => { if (p.sweep === kind) drawPanel(M, panels[k], p, sweeps[kind], x); });
        api.timings[kind + "_sweep_ms"] = performance.now() - t0;
      }
      for (const kind of ["distance", "rain"]) {    // the marker of the changed feature moves
        if (changed === (kind === "distance" ? "distance_m" : "rain_rate_mmh"))
          PANELS.forEach((p, k) => { if (p.sweep === kind) drawPanel(M, panels[k], p, sweeps[kind], x); });
      }
      api.timings.answer_ms = answered - start;
      api.timings.update_ms = performance.now() - start;
      root.dataset.updates = String(Number(root.dataset.updates || 0) + 1);
      status(`${M.models[S.primary].label} and ${M.models[S.backup].label} from the ${M.profile || ""} run's checkpoints, computed in this browser.`);
    };
    const form = controls(M, update);
    root.replaceChildren(el("div", { class: "d2tl-grid" }, form.table,
      el("div", {}, outputs, message)), legend, plots);
    update(null);
    root.dataset.state = "ready";
    api.model = M;
    api.core = core;
    api.answer = (key, x) => core.answer(M, key, x);
    api.select = (x) => core.select(M, x);
  }

  api.ready = main();
})();
