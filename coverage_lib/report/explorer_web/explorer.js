/* D²TL Coverage: the live explorer (the book's "Ask the models" page).
 *
 * Runs the Selector's two backbones in the reader's browser, from the run's checkpoints as
 * coverage_lib.report.explorer exports them (model.json and weights.bin beside this file).
 * No server code, no kernel, no request outside the book's own files. The forward passes
 * below are those of coverage_lib.models (mlp.py, mamba3.py's recurrent scan,
 * mamba_backbone.py, law_head.py, base.CoverageModel.outputs_from) and of the Selector's
 * cascade (evaluation/selector.py), computed in float64 from the float32 weights.
 */
(function () {
  "use strict";
  const root = document.getElementById("d2tl-explorer");
  if (!root) return;
  const base = new URL(".", document.currentScript.src);
  const LN10 = Math.log(10), LN2 = Math.log(2);
  const SWEEP_POINTS = 48;
  const api = { timings: {} };
  window.d2tlExplorer = api;

  // -- numerics (torch's definitions) ------------------------------------------------------
  const softplus = (x) => (x > 20 ? x : Math.log1p(Math.exp(x)));   // beta 1, threshold 20
  const sigmoid = (x) => 1 / (1 + Math.exp(-x));
  const silu = (x) => x * sigmoid(x);
  const log10 = Math.log10;

  function tensor(W, ref) {
    const [offset, ...shape] = ref;
    const size = shape.reduce((a, b) => a * b, 1);
    return { data: W.subarray(offset, offset + size), shape };
  }

  function linear(w, b, x) {               // w (out, in) row-major; b may be null
    const [nOut, nIn] = w.shape, y = new Float64Array(nOut), d = w.data;
    for (let o = 0; o < nOut; o++) {
      let s = b ? b.data[o] : 0;
      const row = o * nIn;
      for (let i = 0; i < nIn; i++) s += d[row + i] * x[i];
      y[o] = s;
    }
    return y;
  }

  function layerNorm(x, w, b, eps) {
    const n = x.length;
    let mean = 0;
    for (let i = 0; i < n; i++) mean += x[i];
    mean /= n;
    let v = 0;
    for (let i = 0; i < n; i++) v += (x[i] - mean) ** 2;
    const inv = 1 / Math.sqrt(v / n + eps), y = new Float64Array(n);
    for (let i = 0; i < n; i++) y[i] = (x[i] - mean) * inv * w.data[i] + b.data[i];
    return y;
  }

  function rmsNorm(x, w, eps) {
    const n = x.length;
    let ms = 0;
    for (let i = 0; i < n; i++) ms += x[i] * x[i];
    const inv = 1 / Math.sqrt(ms / n + eps), y = new Float64Array(n);
    for (let i = 0; i < n; i++) y[i] = x[i] * inv * w.data[i];
    return y;
  }

  function sequential(layers, x) {          // mlp.network: Linear, LayerNorm, SiLU
    return sequentialMany(layers, [x])[0];
  }

  function linearMany(w, b, xs) {          // each weight row read once for all the rows xs
    const [nOut, nIn] = w.shape, d = w.data, ys = xs.map(() => new Float64Array(nOut));
    for (let o = 0; o < nOut; o++) {
      const row = d.subarray(o * nIn, (o + 1) * nIn), b0 = b ? b.data[o] : 0;
      for (let r = 0; r < xs.length; r++) {
        const x = xs[r];
        let s = b0;
        for (let i = 0; i < nIn; i++) s += row[i] * x[i];
        ys[r][o] = s;
      }
    }
    return ys;
  }

  function sequentialMany(layers, xs) {
    for (const layer of layers) {
      if (layer.type === "linear") xs = linearMany(layer.weight, layer.bias, xs);
      else if (layer.type === "layernorm") xs = xs.map((x) => layerNorm(x, layer.weight, layer.bias, layer.eps));
      else xs = xs.map((x) => x.map(silu));
    }
    return xs;
  }

  function bind(W, spec) {                  // {"t": [offset, ...shape]} -> a view of the weights
    if (Array.isArray(spec)) return spec.map((s) => bind(W, s));
    if (spec && typeof spec === "object") {
      if (Array.isArray(spec.t) && Object.keys(spec).length === 1) return tensor(W, spec.t);
      return Object.fromEntries(Object.entries(spec).map(([k, v]) => [k, bind(W, v)]));
    }
    return spec;
  }

  // -- Mamba-3 (mamba3.py, scan_recurrent; one B/C group) ----------------------------------
  function mamba3(m, u) {                   // u: array of L Float64Array(d_model)
    const L = u.length, H = m.nheads, P = m.headdim, N = m.d_state, A = m.n_angles;
    const [nz, nx, nB, nC, nh] = m.split, dIn = m.d_inner;
    const oX = nz, oB = nz + nx, oC = oB + nB, oDt = oC + nC, oA = oDt + nh, oTr = oA + nh,
      oAng = oTr + nh;
    const proj = u.map((ut) => linear(m.in_proj, null, ut));
    const y = proj.map(() => new Float64Array(dIn));
    const bias = (t, h, n) => t.data[h * N + n];
    for (let h = 0; h < H; h++) {
      const state = new Float64Array(P * N), prev = new Float64Array(P * N);
      const theta = new Float64Array(A);
      for (let t = 0; t < L; t++) {
        const p = proj[t];
        const dt = softplus(p[oDt + h] + m.dt_bias.data[h]);
        const a = -Math.max(softplus(p[oA + h]), m.A_floor);
        const lam = sigmoid(p[oTr + h]);
        const Bn = rmsNorm(p.subarray(oB, oB + N), m.B_norm, m.B_eps);
        const Cn = rmsNorm(p.subarray(oC, oC + N), m.C_norm, m.C_eps);
        const Bt = new Float64Array(N), Ct = new Float64Array(N);
        for (let n = 0; n < N; n++) { Bt[n] = Bn[n] + bias(m.B_bias, h, n); Ct[n] = Cn[n] + bias(m.C_bias, h, n); }
        for (let k = 0; k < A; k++) theta[k] += dt * Math.PI * Math.tanh(p[oAng + k]);
        for (let i = 0; i < N / 2; i++) {        // R(θ): pairs (2i, 2i+1) as complex numbers
          const c = i < A ? Math.cos(theta[i]) : 1, s = i < A ? Math.sin(theta[i]) : 0;
          for (const v of [Bt, Ct]) {
            const re = v[2 * i], im = v[2 * i + 1];
            v[2 * i] = re * c - im * s;
            v[2 * i + 1] = re * s + im * c;
          }
        }
        const alpha = Math.exp(dt * a), beta = (1 - lam) * dt * alpha, gamma = lam * dt;
        for (let q = 0; q < P; q++) {
          const xq = p[oX + h * P + q];
          let out = 0;
          for (let n = 0; n < N; n++) {
            const bx = xq * Bt[n], j = q * N + n;
            state[j] = alpha * state[j] + beta * prev[j] + gamma * bx;
            prev[j] = bx;
            out += state[j] * Ct[n];
          }
          y[t][h * P + q] = (out + m.D.data[h] * xq) * silu(p[h * P + q]);
        }
      }
    }
    return y.map((yt) => linear(m.out_proj, null, yt));
  }

  function tokenEncoder(e, values) {        // mamba_backbone.TokenEncoder
    const [T, d] = e.embed_weight.shape;
    let tokens = [];
    for (let t = 0; t < T; t++) {
      const row = new Float64Array(d);
      for (let j = 0; j < d; j++) row[j] = values[t] * e.embed_weight.data[t * d + j] + e.embed_bias.data[t * d + j];
      tokens.push(row);
    }
    for (const layer of e.layers) {
      const h = tokens.map((x) => rmsNorm(x, layer.norm, layer.eps));
      const out = mamba3(layer.forward, h);
      if (layer.backward) {
        const back = mamba3(layer.backward, h.slice().reverse()).reverse();
        out.forEach((o, t) => o.forEach((v, j) => { o[j] = v + back[t][j]; }));
      }
      tokens = tokens.map((x, t) => x.map((v, j) => v + out[t][j]));
    }
    const pooled = new Float64Array(d);
    for (const x of tokens) rmsNorm(x, e.norm, e.eps).forEach((v, j) => { pooled[j] += v / T; });
    return sequential(e.head, pooled);
  }

  // -- the law head (law_head.py) ----------------------------------------------------------
  const lastEncoded = new Map();
  function remembered(encoder, values) {
    const key = values.join(","), last = lastEncoded.get(encoder);
    if (last && last.key === key) return last.out;
    const out = tokenEncoder(encoder, values);
    lastEncoded.set(encoder, { key, out });
    return out;
  }

  function lawHead(model, physics, xn) {
    const law = model.law, nz = model.normalizer;
    const phys = (i, expm1) => {
      const v = xn[i] * nz.feature_std[i] + nz.feature_mean[i];
      return expm1 ? Math.expm1(v) : v;
    };
    const clampTo = (cols, lo, hi) => cols.map((c, k) => Math.min(Math.max(xn[c], lo[k]), hi[k]));
    // Distance and rain enter only through the laws: along a sweep the encoders' inputs stay
    // the same, so their last answer is kept (exactly what they would compute again).
    const p = remembered(model.path, clampTo(law.path_columns, law.path_low, law.path_high));
    const m = remembered(model.medium, clampTo(law.medium_columns, law.medium_low, law.medium_high));
    const perDecade = 1 / LN2;
    const c = {
      intercept: law.intercept_centre + law.intercept_scale * p[0],
      fexp: 20 * perDecade * softplus(p[1]), slope: 20 * perDecade * softplus(p[2]),
      past: 35 * perDecade * softplus(p[3]), bend: 2.5 + p[4], sharp: 2 + 20 * softplus(p[5]),
      excess: 0.5 * softplus(p[6] - 2), rainK: -1.5 + m[0], rainA: 0.05 + softplus(m[1] + 0.5),
      gas: 0.5 * softplus(m[2] - 2),
    };
    const F = Object.fromEntries(FEATURE_NAMES.map((n, i) => [n, i]));
    const log10f = phys(F.frequency_ghz), log10d = phys(F.distance_m);
    const hd = phys(F.bs_height_m) - phys(F.ue_height_m);
    const rain = Math.max(phys(F.rain_rate_mmh, true), 0);
    const budget = phys(F.tx_power_dbm) + phys(F.antenna_gain_dbi);
    const noise = -174 + 10 * (phys(F.bandwidth_mhz) + 6) + phys(F.noise_figure_db)
      + 10 / LN10 * softplus(phys(F.inr_db) * LN10 / 10);
    const rainAtt = rain > 0 ? Math.exp(c.rainA * Math.log(Math.max(rain, 1e-12))) : 0;
    const specific = (c.excess + 10 ** c.rainK * rainAtt + c.gas) / 1000;
    const atRef = c.intercept + c.fexp * log10f - c.slope * law.reference_log10_m;
    const bendAt = c.bend + log10f, dn = c.past - c.slope, h2 = hd * hd;
    const loss = (v) => {
      const d3d = Math.sqrt(10 ** (2 * v) + h2), x = log10(d3d);
      return atRef + c.slope * x + dn * (softplus(c.sharp * (x - bendAt)) / c.sharp) + specific * d3d;
    };
    const power = budget - loss(log10d), sinr = power - noise;
    const allowed = budget - noise - law.edge_sinr_db, excess = (v) => loss(v) - allowed;
    let lo = law.min_log10_m, width = law.max_log10_m - law.min_log10_m;
    for (let r = 0; r < law.rounds; r++) {      // section search, then one Newton step
      let below = 0;
      for (let j = 1; j < law.sections; j++) if (excess(lo + width * (j / law.sections)) <= 0) below++;
      lo += below * (width / law.sections);
      width /= law.sections;
    }
    let root = lo + 0.5 * width;
    const slope = Math.max((excess(root + 1e-3) - excess(root - 1e-3)) / 2e-3, 1e-3);
    root -= excess(root) / slope;
    const dMax = maxDistance(physics, Math.round(phys(F.scenario)));
    const censored = root < log10(physics.min_distance_m) ? 0 : Math.min(10 ** root, dMax);
    const log10Radius = log10(censored + physics.radius_offset_m);
    const radius = Math.max(10 ** log10Radius - physics.radius_offset_m, 0);
    const log10Area = log10(Math.PI * radius * radius / 1e6 + physics.area_offset_km2);
    const qos = Math.min(softplus((sinr - law.gap_db) * LN10 / 10) / LN2,
      physics.max_spectral_efficiency) / physics.max_spectral_efficiency;
    return [power, sinr, log10Radius, log10Area, qos].map(
      (v, k) => (v - nz.target_mean[k]) / nz.target_std[k]);
  }

  // -- the normalisation and the served answer (normalization.py, base.py) -----------------
  let FEATURE_NAMES = [];
  const maxDistance = (physics, scenario) =>
    physics.max_distance_m[String(scenario === physics.rma ? physics.rma : 0)];

  function normalise(model, x) {
    const nz = model.normalizer;
    return x.map((v, i) => {
      const name = FEATURE_NAMES[i];
      const t = name === "rain_rate_mmh" ? Math.log1p(v)
        : ["frequency_ghz", "distance_m", "bandwidth_mhz"].includes(name) ? log10(v) : v;
      return Math.fround((t - nz.feature_mean[i]) / nz.feature_std[i]);  // float32, as torch
    });
  }

  const noiseDbm = (bw, nf) => -174 + 10 * log10(bw * 1e6) + nf;
  const penaltyDb = (inr) => 10 * log10(1 + 10 ** (inr / 10));
  const qosScore = (physics, sinr, gap) => Math.min(log10(1 + 10 ** ((sinr - gap) / 10)) / log10(2),
    physics.max_spectral_efficiency) / physics.max_spectral_efficiency;

  function answer(model, physics, x) {      // CoverageModel.predict_array, outputs "consistent"
    return answerMany(model, physics, [x])[0];
  }

  function answerMany(model, physics, xs) {
    const xn = xs.map((x) => normalise(model, x));
    const ys = model.kind === "mlp" ? sequentialMany(model.layers, xn)
      : xn.map((v) => lawHead(model, physics, v));
    return xs.map((x, r) => served(model, physics, x, ys[r]));
  }

  function served(model, physics, x, y) {   // CoverageModel.outputs_from
    const nz = model.normalizer;
    const raw = Array.from(y, (v, k) => v * nz.target_std[k] + nz.target_mean[k]);
    const F = (n) => x[FEATURE_NAMES.indexOf(n)];
    const power = raw[0];
    const radius = Math.min(Math.max(10 ** raw[2] - physics.radius_offset_m, 0),
      maxDistance(physics, F("scenario")));
    const sinr = power - noiseDbm(F("bandwidth_mhz"), F("noise_figure_db")) - penaltyDb(F("inr_db"));
    return [power, sinr, radius, Math.PI * radius * radius / 1e6,
      qosScore(physics, sinr, model.implementation_gap_db)];
  }

  // -- the Selector's cascade (selector.py) ------------------------------------------------
  function scaled(model, physics, y) {      // Normalizer.normalised_target_array
    const nz = model.normalizer;
    const t = [y[0], y[1], log10(Math.max(y[2], 0) + physics.radius_offset_m),
      log10(Math.max(y[3], 0) + physics.area_offset_km2), y[4]];
    return t.map((v, k) => (v - nz.target_mean[k]) / nz.target_std[k]);
  }

  function gateScore(trees, row) {
    let score = 0;
    for (const tree of trees) {
      let node = tree.feature.length ? 0 : -1;
      while (node >= 0) node = row[tree.feature[node]] <= tree.threshold[node] ? tree.left[node] : tree.right[node];
      score += tree.value[-node - 1];
    }
    return score;
  }

  function ruleExcess(physics, x, y, gap) {
    const F = (n) => x[FEATURE_NAMES.indexOf(n)];
    const [power, sinr, radius, area, qos] = y;
    return {
      area_identity: Math.abs(area - Math.PI * radius * radius / 1e6) / Math.max(area, 1e-4),
      sinr_identity: Math.abs(sinr - (power - noiseDbm(F("bandwidth_mhz"), F("noise_figure_db")) - penaltyDb(F("inr_db")))),
      qos_identity: Math.abs(qos - qosScore(physics, sinr, gap)),
      qos_range: Math.max(-qos, qos - 1, 0),
      radius_range: Math.max(-radius, radius - maxDistance(physics, F("scenario")), 0),
    };
  }

  function select(M, x) {                   // -> {code, reason, detail}
    const S = M.selector, primary = M.models[S.primary];
    const outside = M.features.findIndex((f, i) => x[i] < f.trained[0] || x[i] > f.trained[1]);
    if (outside >= 0) return { code: 1, reason: "out_of_domain", feature: M.features[outside] };
    const y = answer(primary, M.physics, x);
    const excess = ruleExcess(M.physics, x, y, primary.implementation_gap_db);
    const broken = S.rules.filter((r) => excess[r] > S.tolerances[r]);
    if (broken.length) return { code: 2, reason: "physics_rule", rules: broken };
    const score = gateScore(S.gate, x.concat(scaled(primary, M.physics, y)));
    if (S.score_threshold !== null && score > S.score_threshold)
      return { code: 3, reason: "low_confidence", score };
    return { code: 0, reason: "", score };
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
    const M = await (await get("model.json")).json();
    const W = new Float32Array(await (await get(M.weights.file)).arrayBuffer());
    if (W.length !== M.weights.count) throw new Error(`weights.bin holds ${W.length} numbers, model.json expects ${M.weights.count}`);
    for (const key of Object.keys(M.models)) M.models[key] = bind(W, M.models[key]);
    FEATURE_NAMES = M.features.map((f) => f.name);
    return M;
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
    if (route.code === 0)
      return `The Selector answers with ${names[S.primary]}: the link lies in the training domain, the answer keeps every physics identity, and the confidence gate scores it ${fmt(route.score, 3)} (the backup is called above ${fmt(S.score_threshold, 3)}).`;
    const to = `The Selector sends this link to ${names[S.backup]}`;
    if (route.code === 1)
      return `${to}: out of domain — ${route.feature.label} lies outside the trained ${range(route.feature)}${route.feature.unit ? " " + route.feature.unit : ""}.`;
    if (route.code === 2) return `${to}: ${names[S.primary]}'s answer breaks a physics rule (${route.rules.join(", ")}).`;
    return `${to}: low confidence — the gate scores ${names[S.primary]}'s answer ${fmt(route.score, 3)}, above ${fmt(S.score_threshold, 3)} (tolerance ${S.tolerance}).`;
  }

  // -- the sweeps --------------------------------------------------------------------------
  const PANELS = [
    { sweep: "distance", target: 0, title: "received power [dBm] against distance [m]" },
    { sweep: "distance", target: 1, title: "SINR [dB] against distance [m]" },
    { sweep: "rain", target: 0, title: "received power [dBm] against rain rate [mm/h]" },
    { sweep: "rain", target: 1, title: "SINR [dB] against rain rate [mm/h]" },
  ];

  function sweepValues(M, kind, x) {
    const i = FEATURE_NAMES.indexOf(kind === "distance" ? "distance_m" : "rain_rate_mmh");
    const f = M.features[i];
    const high = kind === "distance" ? maxDistance(M.physics, x[FEATURE_NAMES.indexOf("scenario")]) : f.high;
    const values = [];
    for (let k = 0; k < SWEEP_POINTS; k++) {
      const u = k / (SWEEP_POINTS - 1);
      values.push(kind === "distance" ? 10 ** (log10(f.low) + u * (log10(high) - log10(f.low))) : f.low + u * (high - f.low));
    }
    const S = M.selector;
    const curves = {};
    for (const key of [S.primary, S.backup]) {
      curves[key] = answerMany(M.models[key], M.physics, values.map((v) => { const xi = x.slice(); xi[i] = v; return xi; }));
    }
    return { feature: f, index: i, values, curves, log: kind === "distance" };
  }

  function drawPanel(M, node, panel, sweep, x) {
    const w = 320, h = 190, L = 46, R = 8, T = 22, B = 30;
    node.replaceChildren();
    const S = M.selector, keys = [S.primary, S.backup];
    const xs = sweep.values.map((v) => (sweep.log ? log10(v) : v));
    const ys = keys.flatMap((k) => sweep.curves[k].map((y) => y[panel.target]));
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
      const d = sweep.values.map((v, k) => `${k ? "L" : "M"}${px(v).toFixed(1)},${py(sweep.curves[key][k][panel.target]).toFixed(1)}`).join("");
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
      const answers = { [S.primary]: answer(M.models[S.primary], M.physics, x), [S.backup]: answer(M.models[S.backup], M.physics, x) };
      const route = select(M, x);
      answers.selector = answers[route.code ? S.backup : S.primary];
      for (const cell of outputs.querySelectorAll("td[data-model]")) {
        const v = answers[cell.dataset.model][M.targets.findIndex((t) => t.name === cell.dataset.target)];
        cell.dataset.value = String(v);
        cell.textContent = fmt(v);
      }
      outputs.querySelectorAll("[data-model]").forEach((c) => c.classList.toggle("d2tl-chosen",
        c.dataset.model === (route.code ? S.backup : S.primary)));
      root.dataset.routedTo = route.code ? S.backup : S.primary;
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
    api.answer = (key, x) => answer(M.models[key], M.physics, x);
    api.select = (x) => select(M, x);
  }

  api.ready = main();
})();
