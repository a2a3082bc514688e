/* D²TL Coverage: the live explorer's numerics, with no DOM.
 *
 * The forward passes of the Selector's two backbones and of its cascade, computed in float64
 * from the float32 weights that coverage_lib.report.explorer exports (model.json and
 * weights.bin): coverage_lib.models (mlp.py; mamba3.py's recurrent scan; mamba_backbone.py;
 * law_head.py; normalization.py; base.CoverageModel.outputs_from), physics (propagation.py's
 * noise, SINR and QoS definitions; rules.py's identities) and evaluation/selector.py.
 *
 * Every number these computations take from the library comes from model.json, where
 * explorer.py computes it from the module that defines it. What this file writes itself are
 * definitions: π, ln 2, ln 10, the decibel (DB = 10: 10·log10 of a power ratio), SI prefixes
 * (MHz, km, km²) and log2 in Shannon's formula; and torch's definitions of the operations
 * (softplus with model.json's beta and threshold, SiLU, LayerNorm, RMSNorm).
 *
 * One file for the page (explorer.js loads it: window.d2tlExplorerCore) and for Node (the
 * unit test tests/test_explorer_parity.py: require() gives the same object). When a mirrored
 * forward pass changes in Python, that test fails and names this file.
 */
(function (global) {
  "use strict";
  const LN10 = Math.log(10), LN2 = Math.log(2), log10 = Math.log10;
  const DB = 10;                      // decibel: DB·log10 of a power ratio
  const M2_PER_KM2 = 1e6, M_PER_KM = 1e3;

  // -- torch's definitions -------------------------------------------------------------------
  const sigmoid = (x) => 1 / (1 + Math.exp(-x));
  const silu = (x) => x * sigmoid(x);

  function softplusOf(numerics) {     // F.softplus(x, beta, threshold)
    const beta = numerics.softplus_beta, threshold = numerics.softplus_threshold;
    return (x) => (x * beta > threshold ? x : Math.log1p(Math.exp(beta * x)) / beta);
  }

  function tensor(W, ref) {
    const [offset, ...shape] = ref;
    const size = shape.reduce((a, b) => a * b, 1);
    return { data: W.subarray(offset, offset + size), shape };
  }

  function bind(W, spec) {            // {"t": [offset, ...shape]} -> a view of the weights
    if (Array.isArray(spec)) return spec.map((s) => bind(W, s));
    if (spec && typeof spec === "object") {
      if (Array.isArray(spec.t) && Object.keys(spec).length === 1) return tensor(W, spec.t);
      return Object.fromEntries(Object.entries(spec).map(([k, v]) => [k, bind(W, v)]));
    }
    return spec;
  }

  function linear(w, b, x) {          // w (out, in) row-major; b may be null
    const [nOut, nIn] = w.shape, y = new Float64Array(nOut), d = w.data;
    for (let o = 0; o < nOut; o++) {
      let s = b ? b.data[o] : 0;
      const row = o * nIn;
      for (let i = 0; i < nIn; i++) s += d[row + i] * x[i];
      y[o] = s;
    }
    return y;
  }

  function linearMany(w, b, xs) {     // each weight row read once for all the rows xs
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

  function sequentialMany(layers, xs) {   // mlp.network: Linear, LayerNorm, SiLU
    for (const layer of layers) {
      if (layer.type === "linear") xs = xs.length ? linearMany(layer.weight, layer.bias, xs) : xs;
      else if (layer.type === "layernorm") xs = xs.map((x) => layerNorm(x, layer.weight, layer.bias, layer.eps));
      else if (layer.type === "silu") xs = xs.map((x) => x.map(silu));
      else throw new Error(`explorer_core.js runs linear, layernorm and silu layers; got ${layer.type}`);
    }
    return xs;
  }

  const sequential = (layers, x) => sequentialMany(layers, [x])[0];

  // -- Mamba-3 (mamba3.py, scan_recurrent; one B/C group) ------------------------------------
  function mamba3(M, m, u) {          // u: array of L Float64Array(d_model)
    const softplus = M.softplus;
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

  function tokenEncoder(M, e, values) {   // mamba_backbone.TokenEncoder
    const [T, d] = e.embed_weight.shape;
    let tokens = [];
    for (let t = 0; t < T; t++) {
      const row = new Float64Array(d);
      for (let j = 0; j < d; j++) row[j] = values[t] * e.embed_weight.data[t * d + j] + e.embed_bias.data[t * d + j];
      tokens.push(row);
    }
    for (const layer of e.layers) {
      const h = tokens.map((x) => rmsNorm(x, layer.norm, layer.eps));
      const out = mamba3(M, layer.forward, h);
      if (layer.backward) {
        const back = mamba3(M, layer.backward, h.slice().reverse()).reverse();
        out.forEach((o, t) => o.forEach((v, j) => { o[j] = v + back[t][j]; }));
      }
      tokens = tokens.map((x, t) => x.map((v, j) => v + out[t][j]));
    }
    const pooled = new Float64Array(d);
    for (const x of tokens) rmsNorm(x, e.norm, e.eps).forEach((v, j) => { pooled[j] += v / T; });
    return sequential(e.head, pooled);
  }

  // Distance and rain enter only through the laws: along a sweep the encoders' inputs stay
  // the same, so their last answer is kept (exactly what they would compute again).
  const lastEncoded = new WeakMap();
  function remembered(M, encoder, values) {
    const key = values.join(","), last = lastEncoded.get(encoder);
    if (last && last.key === key) return last.out;
    const out = tokenEncoder(M, encoder, values);
    lastEncoded.set(encoder, { key, out });
    return out;
  }

  // -- the physics page's definitions (propagation.py) ---------------------------------------
  const dbSum = (x) => DB * log10(1 + 10 ** (x / DB));      // 10·log10(1 + 10^(x/10))
  const noiseDbm = (physics, bandwidthMhz, nf) =>                // thermal_noise_dbm
    physics.thermal_noise_dbm_1mhz + DB * log10(bandwidthMhz) + nf;
  const penaltyDb = (inr) => dbSum(inr);                         // interference_penalty_db
  const qosScore = (physics, sinr, gap) =>                       // qos_score
    Math.min(log10(1 + 10 ** ((sinr - gap) / DB)) / log10(2), physics.max_spectral_efficiency)
    / physics.max_spectral_efficiency;
  const maxDistance = (physics, scenario) =>                     // max_distance_m
    physics.max_distance_m[String(scenario === physics.rma ? physics.rma : physics.uma)];

  // -- the transforms (normalization.py) -----------------------------------------------------
  function forwardFeature(kind, v) {
    if (kind === null) return v;
    if (kind === "log10") return log10(v);
    if (kind === "log1p") return Math.log1p(v);
    throw new Error(`explorer_core.js: unknown feature transform ${kind}`);
  }

  function forwardTarget(t, v) {      // log10(max(v, 0) + offset)
    return t === null ? v : log10(Math.max(v, 0) + t.offset);
  }

  function inverseTarget(t, v) {      // max(10^v − offset, 0)
    return t === null ? v : Math.max(10 ** v - t.offset, 0);
  }

  function normalise(M, model, x) {   // Normalizer.feature_array: float32, as torch takes it
    const nz = model.normalizer;
    return x.map((v, i) => Math.fround((forwardFeature(M.transforms.features[i], v)
      - nz.feature_mean[i]) / nz.feature_std[i]));
  }

  // -- the law head (law_head.py) ------------------------------------------------------------
  function lawHead(M, model, xn) {
    const law = model.law, nz = model.normalizer, physics = M.physics, softplus = M.softplus;
    const F = M.featureIndex, kinds = M.transforms.features;
    const phys = (name) => {          // LawHead._physical: log10 features stay in log10
      const i = F[name], v = xn[i] * nz.feature_std[i] + nz.feature_mean[i];
      return kinds[i] === "log1p" ? Math.expm1(v) : v;
    };
    const clampTo = (cols, lo, hi) => cols.map((c, k) => Math.min(Math.max(xn[c], lo[k]), hi[k]));
    const raw = {
      path: remembered(M, model.path, clampTo(law.path_columns, law.path_low, law.path_high)),
      medium: remembered(M, model.medium, clampTo(law.medium_columns, law.medium_low, law.medium_high)),
    };
    const c = {};                     // LawHead.coefficients
    for (const m of law.coefficients) {
      const r = raw[m.encoder][m.input];
      c[m.name] = m.offset + m.scale * (m.form === "softplus" ? softplus(r + m.shift) : r);
    }
    const log10f = phys("frequency_ghz"), log10d = phys("distance_m");
    const hd = phys("bs_height_m") - phys("ue_height_m");
    const rain = Math.max(phys("rain_rate_mmh"), 0);
    const budget = phys("tx_power_dbm") + phys("antenna_gain_dbi");
    const noise = physics.thermal_noise_dbm_1mhz + DB * phys("bandwidth_mhz") + phys("noise_figure_db")
      + DB / LN10 * softplus(phys("inr_db") * LN10 / DB);
    // LawHead.distance_law
    const rainAtt = rain > 0 ? Math.exp(c.rain_exponent * Math.log(Math.max(rain, law.rain_floor_mmh))) : 0;
    const specific = (c.excess + 10 ** c.rain_log10_k * rainAtt + c.gas) / M_PER_KM;
    const atRef = c.intercept + c.frequency_exponent * log10f - c.slope * law.reference_log10_m;
    const bendAt = c.bend_at_1ghz + log10f, dn = c.slope_past_bend - c.slope, h2 = hd * hd;
    const k = c.sharpness;
    const loss = (v) => {
      const d3d = Math.sqrt(10 ** (2 * v) + h2), x = log10(d3d);
      return atRef + c.slope * x + dn * (softplus(k * (x - bendAt)) / k) + specific * d3d;
    };
    const power = budget - loss(log10d), sinr = power - noise;
    // LawHead._radius: section search, then one Newton step; censored as the data are
    const allowed = budget - noise - law.edge_sinr_db, excess = (v) => loss(v) - allowed;
    let lo = law.min_log10_m, width = law.max_log10_m - law.min_log10_m;
    for (let r = 0; r < law.rounds; r++) {
      let below = 0;
      for (let j = 1; j < law.sections; j++) if (excess(lo + width * (j / law.sections)) <= 0) below++;
      lo += below * (width / law.sections);
      width /= law.sections;
    }
    let root = lo + 0.5 * width;
    const step = law.newton_step_log10_m;
    const slope = Math.max((excess(root + step) - excess(root - step)) / (2 * step), law.newton_min_slope);
    root -= excess(root) / slope;
    const dMax = maxDistance(physics, Math.round(phys("scenario")));
    const censored = root < log10(physics.min_distance_m) ? 0 : Math.min(10 ** root, dMax);
    const log10Radius = log10(censored + physics.radius_offset_m);
    const radius = Math.max(10 ** log10Radius - physics.radius_offset_m, 0);
    const log10Area = log10(Math.PI * radius * radius / M2_PER_KM2 + physics.area_offset_km2);
    const qos = Math.min(softplus((sinr - law.gap_db) * LN10 / DB) / LN2,
      physics.max_spectral_efficiency) / physics.max_spectral_efficiency;
    const columns = { received_power_dbm: power, sinr_db: sinr, coverage_radius_m: log10Radius,
      coverage_area_km2: log10Area, qos_score: qos };
    return M.targetNames.map((t, j) => (columns[t] - nz.target_mean[j]) / nz.target_std[j]);
  }

  // -- a backbone's served answer (base.CoverageModel.predict, outputs "consistent") ---------
  function network(M, model, xn) {
    if (model.kind === "mlp") return sequentialMany(model.layers, xn);
    if (model.kind === "mamba3_law") return xn.map((v) => lawHead(M, model, v));
    throw new Error(`explorer_core.js runs the kinds mlp and mamba3_law; got ${model.kind}`);
  }

  function served(M, model, x, y) {   // CoverageModel.outputs_from, physics.consistent_array
    const nz = model.normalizer, physics = M.physics, T = M.targetIndex, F = M.featureIndex;
    const raw = Array.from(y, (v, k) => inverseTarget(M.transforms.targets[k],
      v * nz.target_std[k] + nz.target_mean[k]));
    const power = raw[T.received_power_dbm];
    const radius = Math.min(Math.max(raw[T.coverage_radius_m], 0), maxDistance(physics, x[F.scenario]));
    const sinr = power - noiseDbm(physics, x[F.bandwidth_mhz], x[F.noise_figure_db]) - penaltyDb(x[F.inr_db]);
    const columns = { received_power_dbm: power, sinr_db: sinr, coverage_radius_m: radius,
      coverage_area_km2: Math.PI * radius * radius / M2_PER_KM2,
      qos_score: qosScore(physics, sinr, model.implementation_gap_db) };
    return M.targetNames.map((t) => columns[t]);
  }

  function answerMany(M, key, xs) {   // the five targets (TARGETS order) of each link
    const model = M.models[key];
    const ys = network(M, model, xs.map((x) => normalise(M, model, x)));
    return xs.map((x, r) => served(M, model, x, ys[r]));
  }

  const answer = (M, key, x) => answerMany(M, key, [x])[0];

  // -- the Selector's cascade (selector.py) --------------------------------------------------
  function scaled(M, model, y) {      // Normalizer.normalised_target_array
    const nz = model.normalizer;
    return y.map((v, k) => (forwardTarget(M.transforms.targets[k], v) - nz.target_mean[k]) / nz.target_std[k]);
  }

  // flat_trees' leaves summed (explorer.tree_scores); margin: how near a split on a column from
  // ``from`` on (the primary's answers, which float32 rounding moves) the row passed
  function gateScore(trees, row, from = 0) {
    let score = 0, margin = Infinity;
    for (const tree of trees) {
      let node = tree.feature.length ? 0 : -1;
      while (node >= 0) {
        const f = tree.feature[node], v = row[f], t = tree.threshold[node];
        if (f >= from) margin = Math.min(margin, Math.abs(v - t) / Math.max(1, Math.abs(t)));
        node = v <= t ? tree.left[node] : tree.right[node];
      }
      score += tree.value[-node - 1];
    }
    return { score, margin };
  }

  function ruleExcess(M, x, y, gap) {     // rules.excess_array, the answer-only rules
    const physics = M.physics, F = M.featureIndex, T = M.targetIndex;
    const power = y[T.received_power_dbm], sinr = y[T.sinr_db], radius = y[T.coverage_radius_m],
      area = y[T.coverage_area_km2], qos = y[T.qos_score];
    const excess = {
      area_identity: () => Math.abs(area - Math.PI * radius * radius / M2_PER_KM2) / Math.max(area, physics.area_floor_km2),
      sinr_identity: () => Math.abs(sinr - (power - noiseDbm(physics, x[F.bandwidth_mhz], x[F.noise_figure_db]) - penaltyDb(x[F.inr_db]))),
      qos_identity: () => Math.abs(qos - qosScore(physics, sinr, gap)),
      qos_range: () => Math.max(-qos, qos - 1, 0),
      radius_range: () => Math.max(-radius, radius - maxDistance(physics, x[F.scenario]), 0),
    };
    return Object.fromEntries(M.selector.rules.map((r) => {
      if (!excess[r]) throw new Error(`explorer_core.js judges the rules ${Object.keys(excess)}; got ${r}`);
      return [r, excess[r]()];
    }));
  }

  function outside(M, x) {            // the first feature outside the training domain, or -1
    return M.features.findIndex((f, i) => x[i] < f.trained[0] || x[i] > f.trained[1]);
  }

  function routed(M, reason, fields) {
    const S = M.selector, code = reason ? S.reasons.indexOf(reason) + 1 : 0;
    return { code, reason, routed_to: code ? S.backup : S.primary, ...fields };
  }

  function gates(M, x, y) {           // physics rule and confidence gates on the primary's y
    const S = M.selector, primary = M.models[S.primary];
    const excess = ruleExcess(M, x, y, primary.implementation_gap_db);
    const broken = S.rules.filter((r) => excess[r] > S.tolerances[r]);
    const gate = gateScore(S.gate, x.concat(scaled(M, primary, y)), x.length);
    const unsure = S.score_threshold !== null && gate.score > S.score_threshold;
    return { broken, excess, score: gate.score, margin: gate.margin, unsure };
  }

  function select(M, x) {             // Selector.predict's route: the backup is not run
    const S = M.selector, i = outside(M, x);
    if (i >= 0) return routed(M, "out_of_domain", { feature: M.features[i] });
    const g = gates(M, x, answer(M, S.primary, x));
    if (g.broken.length) return routed(M, "physics_rule", { rules: g.broken });
    return routed(M, g.unsure ? "low_confidence" : "", { score: g.score });
  }

  function route(M, x) {              // Selector.route: every gate on the link, both answers
    const S = M.selector, i = outside(M, x);
    const primary = answer(M, S.primary, x), backup = answer(M, S.backup, x);
    const g = gates(M, x, primary);
    const reason = i >= 0 ? "out_of_domain" : g.broken.length ? "physics_rule"
      : g.unsure ? "low_confidence" : "";
    const out = routed(M, reason, {
      out_of_domain: i >= 0 ? M.features[i].name : "", rules_broken: g.broken,
      rule_excess: g.excess, confidence_score: g.score, gate_margin: g.margin,
      primary, backup,
    });
    out.answer = out.code ? backup : primary;
    return out;
  }

  // -- model.json and weights.bin ------------------------------------------------------------
  function prepare(M, W) {            // M: model.json's content; W: weights.bin as Float32Array
    if (W.length !== M.weights.count)
      throw new Error(`weights.bin holds ${W.length} numbers, model.json expects ${M.weights.count}`);
    for (const key of Object.keys(M.models)) M.models[key] = bind(W, M.models[key]);
    M.featureNames = M.features.map((f) => f.name);
    M.targetNames = M.targets.map((t) => t.name);
    M.featureIndex = Object.fromEntries(M.featureNames.map((n, i) => [n, i]));
    M.targetIndex = Object.fromEntries(M.targetNames.map((n, i) => [n, i]));
    M.softplus = softplusOf(M.numerics);
    return M;
  }

  const core = {
    prepare, answer, answerMany, select, route, gateScore, ruleExcess, scaled, normalise,
    maxDistance, noiseDbm, penaltyDb, qosScore, forwardFeature, forwardTarget, inverseTarget,
  };
  global.d2tlExplorerCore = core;
  if (typeof module !== "undefined" && module.exports) module.exports = core;
})(typeof globalThis !== "undefined" ? globalThis : this);
