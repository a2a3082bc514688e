"""Mamba-3 SISO block in pure PyTorch, with its two exact scan forms.

Paper: "Mamba-3: Improved Sequence Modeling using State Space Principles" (ICLR 2026,
arXiv 2603.15569). Layout and initialisation follow the reference module
`mamba_ssm/modules/mamba3.py` (mamba-ssm 2.3.2.post1), so one state_dict loads into either.

Per head (head dim P, state size N), for every token t (all inputs are projections of u_t)::

    Δ_t = softplus(dd_dt_t + dt_bias)                 step size
    A_t = -max(softplus(dd_A_t), A_floor)             data-dependent decay rate, α_t = exp(Δ_t A_t)
    λ_t = σ(trap_t)                                   learned exponential-trapezoid weight
    θ_t = Σ_{s≤t} Δ_s·π·tanh(φ_s)                     data-dependent rotary angle (the complex state)
    B̃_t = R(θ_t)(RMSNorm(B_t) + b_B),  C̃_t likewise  BC-norm with biases, then rotation
    h_t = α_t h_{t-1} + (1-λ_t) Δ_t α_t B̃_{t-1} x_{t-1}ᵀ + λ_t Δ_t B̃_t x_tᵀ   (exp.-trapezoidal rule)
    y_t = C̃_tᵀ h_t + D x_t,      out = W_out(y ⊙ SiLU(z))

There is no short convolution. λ ≡ 1 is Mamba-2's exponential-Euler SSD, λ ≡ ½ the classical
trapezoid, θ ≡ 0 a real-valued SSM. `scan_recurrent` and `scan_parallel` are two exact forms
of the same map (they agree to round-off, values and gradients); the fused Triton kernel of
mamba-ssm is used only on CUDA with mamba_ssm importable.

Differences from upstream, all numerically neutral or a widening of what is accepted:

- upstream wraps θ into [0, 2π) (keeps float32 angles small); we do not: cos/sin are periodic
  and floor() has zero gradient, so values and gradients are the same maths.
- upstream forces A to float32; here every tensor follows the module dtype (float64 in tests).
- upstream asserts rope_fraction ∈ {0.5, 1.0}; the SISO maths works for any fraction in (0, 1],
  so we accept that range (only {0.5, 1.0} can be handed to the fused kernel).
- d_state must be even and A_floor, dt_init_floor >= 0 are checked here with ValueErrors
  (upstream's module leaves the first to its kernel and does not check the others).
"""
import functools
import importlib
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..core import validation

SCANS = ("recurrent", "parallel", "fused", "auto")


def rotary_factor(theta, d_state):
    """e^{iθ} for each consecutive pair of state dims, as (cos θ, sin θ):
    (..., n_angles) -> real (..., d_state/2, 2).

    Pairs (v_{2i}, v_{2i+1}) are complex numbers v_{2i} + i·v_{2i+1} (the paper's complex state);
    pairs beyond n_angles get factor 1, i.e. pass unrotated (upstream SISO: first dims rotate).
    The complex product is written out in real arithmetic, which every exporter (ONNX) and
    compiler takes; the values are those of the complex form.
    """
    missing = d_state // 2 - theta.shape[-1]
    return torch.stack([F.pad(torch.cos(theta), (0, missing), value=1.0),
                        F.pad(torch.sin(theta), (0, missing), value=0.0)], dim=-1)


def rotate(v, rot):
    """R(θ)v: multiply each pair of v (..., d_state) by its factor rot (..., d_state/2, 2)."""
    pairs = v.unflatten(-1, (-1, 2))
    re, im = pairs[..., 0], pairs[..., 1]
    cos, sin = rot[..., 0], rot[..., 1]
    return torch.stack([re * cos - im * sin, re * sin + im * cos], dim=-1).flatten(-2)


def scan_recurrent(x, dt, A, lam, B, C, dtheta, D):
    """Reference token loop of the Mamba-3 exponential-trapezoidal recurrence.

    x: (b, l, h, p) inputs; dt, A, lam: (b, l, h) Δ, A, λ; B, C: (b, l, h, n) normed and biased
    but NOT yet rotated; dtheta: (b, l, h, n_angles) angle increments Δ·π·tanh(φ); D: (h,), or
    (b, 1, h) for a skip weight per batch row (``stacked_forward``).
    Returns y: (b, l, h, p) = C̃ᵀh + D x (before the SiLU gate).
    """
    b, l, h, p = x.shape
    state = x.new_zeros(b, h, p, B.shape[-1])
    theta = torch.zeros_like(dtheta[:, 0])
    prev_Bx = torch.zeros_like(state)       # B̃_{t-1} x_{t-1}ᵀ, zero before the first token
    ys = []
    for t in range(l):
        theta = theta + dtheta[:, t]
        rot = rotary_factor(theta, B.shape[-1])
        Bt, Ct = rotate(B[:, t], rot), rotate(C[:, t], rot)
        alpha = torch.exp(dt[:, t] * A[:, t])[..., None, None]
        Bx = x[:, t, :, :, None] * Bt[:, :, None, :]                       # (b, h, p, n)
        beta = ((1 - lam[:, t]) * dt[:, t])[..., None, None] * alpha       # previous-token weight
        gamma = (lam[:, t] * dt[:, t])[..., None, None]                    # current-token weight
        state = alpha * state + beta * prev_Bx + gamma * Bx
        ys.append(torch.einsum("bhpn,bhn->bhp", state, Ct) + D[:, None] * x[:, t])
        prev_Bx = Bx
    return torch.stack(ys, dim=1)


def segsum(a):
    """Segment sums S[..., t, s] = Σ_{s<r≤t} a_r for s ≤ t, -inf above the diagonal.

    Summing only the segment (masked cumsum) avoids the cancellation of c_t - c_s; masking
    with -inf *before* exp gives exact zeros with zero gradient (no inf·0 NaNs).
    """
    L = a.shape[-1]
    ones = torch.ones(L, L, dtype=torch.bool, device=a.device)
    seg = a[..., :, None].expand(*a.shape, L).masked_fill(~ones.tril(-1), 0).cumsum(dim=-2)
    return seg.masked_fill(~ones.tril(), -math.inf)


def scan_parallel(x, dt, A, lam, B, C, dtheta, D):
    """Quadratic (SSD-style) form of the same recurrence, same arguments as `scan_recurrent`.

    With c_t = Σ_{r≤t} Δ_r A_r (unrolling h_t; the (1-λ_{s+1}) term of step s+1 carries
    B̃_s x_s with decay α_{s+1}, which merges into exp(c_t - c_s))::

        y_t = Σ_{s≤t} exp(c_t - c_s)·[λ_s Δ_s + 1(s<t)(1-λ_{s+1}) Δ_{s+1}]·(C̃_t·B̃_s) x_s + D x_t.
    """
    rot = rotary_factor(dtheta.cumsum(dim=1), B.shape[-1])             # θ_t = Σ_{s≤t} dθ_s
    Bt, Ct = rotate(B, rot), rotate(C, rot)
    gamma = lam * dt                                                       # λ_s Δ_s
    beta_next = F.pad(((1 - lam) * dt)[:, 1:], (0, 0, 0, 1))               # (1-λ_{s+1}) Δ_{s+1}
    decay = torch.exp(segsum((dt * A).transpose(1, 2)))                    # (b, h, t, s)
    weight = decay * (gamma + beta_next).transpose(1, 2)[:, :, None, :]
    weight = weight - torch.diag_embed(beta_next.transpose(1, 2))          # diagonal keeps λ_t Δ_t only
    if torch.compiler.is_compiling():
        # Under torch.compile, products over a few tokens are broadcast and summed, which
        # inductor fuses into its kernels, rather than batched products of (length × d_state)
        # matrices: the same sums as the einsums below.
        scores = (Ct.transpose(1, 2)[:, :, :, None] * Bt.transpose(1, 2)[:, :, None]).sum(-1)
        y = ((scores * weight).permute(0, 2, 3, 1)[..., None] * x[:, None]).sum(2)
        return y + D[..., None] * x
    scores = torch.einsum("bthn,bshn->bhts", Ct, Bt) * weight
    return torch.einsum("bhts,bshp->bthp", scores, x) + D[..., None] * x


def stacked_forward(mixers, inputs):
    """``[m(u) for m, u in zip(mixers, inputs)]`` for Mamba3 mixers of one configuration
    (the two directions of a bidirectional layer), computed as one: each parameter stacked
    along a new leading axis, one batched matrix product per projection, one parallel scan
    over all of them. The same maths in fewer, larger operations, so the same values to
    round-off (tested, values and gradients). The parallel form only: callers use it where
    ``scan_on`` says "parallel"."""
    first, k = mixers[0], len(mixers)
    u = torch.stack(inputs)                                                # (k, b, l, d_model)
    _, b, l, _ = u.shape
    h, g, n, p = first.nheads, first.ngroups, first.d_state, first.headdim

    def stacked(get):
        return torch.stack([get(m) for m in mixers])

    proj = torch.bmm(u.flatten(1, 2), stacked(lambda m: m.in_proj.weight).transpose(1, 2))
    z, x, B, C, dd_dt, dd_A, trap, angle = torch.split(proj.view(k, b, l, -1),
                                                       first.split_sizes, dim=-1)
    dt = F.softplus(dd_dt + stacked(lambda m: m.dt_bias)[:, None, None])
    A = -F.softplus(dd_A).clamp(min=first.A_floor)
    lam = torch.sigmoid(trap)

    def bc_norm(v, norm, bias):   # Mamba3.ssm_inputs's RMSNorm and per-head bias, per mixer
        weight = stacked(lambda m: getattr(m, norm).weight)[:, None, None, None, None]
        v = F.rms_norm(v.view(k, b, l, g, 1, n), (n,), eps=getattr(first, norm).eps) * weight
        return (v + stacked(lambda m: getattr(m, bias)).view(k, 1, 1, g, h // g, n)).flatten(3, 4)

    B, C = bc_norm(B, "B_norm", "B_bias"), bc_norm(C, "C_norm", "C_bias")
    dtheta = dt[..., None] * math.pi * torch.tanh(angle)[..., None, :]   # (k, b, l, h, angles)
    x = x.reshape(k, b, l, h, p)
    D = stacked(lambda m: m.D)[:, None, None, :].expand(k, b, 1, h).flatten(0, 1)
    y = scan_parallel(*(t.flatten(0, 1) for t in (x, dt, A, lam, B, C, dtheta)), D)
    y = y.view(k, b, l, h, p) * F.silu(z.view(k, b, l, h, p))
    out = torch.bmm(y.reshape(k, b * l, h * p), stacked(lambda m: m.out_proj.weight).transpose(1, 2))
    return out.view(k, b, l, -1).unbind(0)


@functools.cache
def _fused_unavailable_reason():
    """None when mamba_ssm's fused Mamba-3 kernel can run here, else a human-readable reason."""
    if not torch.cuda.is_available():
        return "CUDA is not available (mamba_ssm's Mamba-3 kernels are Triton, GPU only)"
    try:
        importlib.import_module("mamba_ssm.modules.mamba3")
    except Exception as err:  # ImportError, or a missing compiled extension
        return f"`import mamba_ssm.modules.mamba3` failed ({type(err).__name__}: {err})"
    return None


class Mamba3(nn.Module):
    """Mamba-3 SISO mixer: (batch, length, d_model) -> (batch, length, d_model).

    Arguments and parameter names are those of mamba_ssm.modules.mamba3.Mamba3 (SISO, no
    out-proj norm). `scan` picks the form: "recurrent" (token loop, reference), "parallel"
    (L×L quadratic form, the CPU default), "fused" (mamba-ssm Triton kernel; CUDA only),
    "auto" (fused when available and the input is on CUDA, else parallel).
    """

    def __init__(self, d_model, d_state=128, expand=2, headdim=64, ngroups=1, rope_fraction=0.5,
                 dt_min=0.001, dt_max=0.1, dt_init_floor=1e-4, A_floor=1e-4, scan="parallel",
                 device=None, dtype=None):
        super().__init__()
        for name, value in (("d_model", d_model), ("d_state", d_state), ("headdim", headdim),
                            ("ngroups", ngroups)):
            validation.positive_int(name, value)
        if d_state % 2:
            raise ValueError(f"d_state must be even (state dims pair up as complex numbers, as in the "
                             f"mamba-ssm kernel), got {d_state}")
        if not expand > 0:
            raise ValueError(f"expand must be > 0, got {expand!r}")
        d_inner = int(expand * d_model)
        if d_inner < 1 or d_inner % headdim != 0:
            raise ValueError(f"d_model*expand must be a positive multiple of headdim; got "
                             f"d_model={d_model}, expand={expand} (d_inner={d_inner}), headdim={headdim}")
        nheads = d_inner // headdim
        if nheads % ngroups != 0:
            raise ValueError(f"ngroups must divide the number of heads ({nheads}); got ngroups={ngroups}")
        if not 0 < rope_fraction <= 1:
            raise ValueError(f"rope_fraction must be in (0, 1], got {rope_fraction!r}")
        # Like upstream: int(N·fraction) state dims, rounded down to an even count of rotated dims.
        num_rope_angles = int(d_state * rope_fraction) // 2
        if num_rope_angles < 1:
            raise ValueError(f"rope_fraction={rope_fraction} with d_state={d_state} rotates fewer than "
                             f"2 state dims; need int(d_state*rope_fraction) >= 2")
        if not 0 < dt_min <= dt_max:
            raise ValueError(f"dt_min, dt_max must satisfy 0 < dt_min <= dt_max, got {dt_min!r}, {dt_max!r}")
        if dt_init_floor < 0 or A_floor < 0:
            raise ValueError(f"dt_init_floor and A_floor must be >= 0, got {dt_init_floor!r}, {A_floor!r}")
        validation.one_of(*SCANS)("scan", scan)
        if scan == "fused":
            reason = _fused_unavailable_reason()
            if reason is not None:
                raise RuntimeError(f"scan='fused' needs CUDA and mamba_ssm: {reason}. "
                                   f"Use scan='parallel' (exact, fast for short rows) or scan='auto'.")
            if rope_fraction not in (0.5, 1.0):
                raise ValueError(f"scan='fused' supports rope_fraction in (0.5, 1.0) only, got {rope_fraction!r}")

        self.d_model, self.d_state, self.expand, self.headdim = d_model, d_state, expand, headdim
        self.ngroups, self.rope_fraction, self.A_floor, self.scan = ngroups, rope_fraction, A_floor, scan
        self.d_inner, self.nheads, self.num_rope_angles = d_inner, nheads, num_rope_angles
        factory = {"device": device, "dtype": dtype}

        # in_proj output order (upstream): [z, x, B, C, dd_dt, dd_A, trap, angle]; B, C per group,
        # dd_dt, dd_A, trap per head, angles shared by all heads (θ is per head through Δ).
        self.split_sizes = [d_inner, d_inner, d_state * ngroups, d_state * ngroups,
                            nheads, nheads, nheads, num_rope_angles]
        self.in_proj = nn.Linear(d_model, sum(self.split_sizes), bias=False, **factory)

        # Δ initialised log-uniform in [dt_min, dt_max] (floored); dt_bias = softplus⁻¹(Δ).
        dt = torch.exp(torch.rand(nheads, device=device) * (math.log(dt_max) - math.log(dt_min))
                       + math.log(dt_min)).clamp(min=dt_init_floor)
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))
        self.dt_bias._no_weight_decay = True
        # BC-norm biases b_B, b_C: per head, init 1; shape (nheads, mimo_rank=1, d_state) as upstream.
        self.B_bias = nn.Parameter(torch.ones(nheads, 1, d_state, device=device))
        self.C_bias = nn.Parameter(torch.ones(nheads, 1, d_state, device=device))
        self.B_bias._no_weight_decay = True   # biases: decay would pull them from their init of 1
        self.C_bias._no_weight_decay = True
        self.B_norm = nn.RMSNorm(d_state, eps=1e-5, **factory)   # keys B_norm.weight, like upstream
        self.C_norm = nn.RMSNorm(d_state, eps=1e-5, **factory)
        self.D = nn.Parameter(torch.ones(nheads, device=device))
        self.D._no_weight_decay = True
        self.out_proj = nn.Linear(d_inner, d_model, bias=False, **factory)

    def ssm_inputs(self, u):
        """Project u (b, l, d_model) into the scan's arguments (x, Δ, A, λ, B, C, dθ, D) and z."""
        b, l, _ = u.shape
        h, g = self.nheads, self.ngroups
        z, x, B, C, dd_dt, dd_A, trap, angle = torch.split(self.in_proj(u), self.split_sizes, dim=-1)
        dt = F.softplus(dd_dt + self.dt_bias)
        A = -F.softplus(dd_A).clamp(min=self.A_floor)
        lam = torch.sigmoid(trap)
        # Group g's B, C serve a contiguous block of H/G heads (upstream's GQA repeat); adding
        # the per-head bias broadcasts the group over its heads: (b, l, g, 1, n) + (g, H/G, n).
        B = self.B_norm(B.view(b, l, g, 1, self.d_state)) + self.B_bias.view(g, h // g, self.d_state)
        C = self.C_norm(C.view(b, l, g, 1, self.d_state)) + self.C_bias.view(g, h // g, self.d_state)
        B, C = B.flatten(2, 3), C.flatten(2, 3)
        dtheta = dt[..., None] * math.pi * torch.tanh(angle)[:, :, None, :]   # (b, l, h, n_angles)
        x = x.view(b, l, h, self.headdim)
        return (x, dt, A, lam, B, C, dtheta, self.D), z.view(b, l, h, self.headdim)

    def forward(self, u):
        if u.dim() != 3 or u.shape[-1] != self.d_model:
            raise ValueError(f"input must be (batch, length, {self.d_model}), got {tuple(u.shape)}")
        scan = self.scan
        if scan in ("fused", "auto"):
            reason = self._fused_blocker(u.device)
            if reason is None:
                return self._fused_forward(u)
            if scan == "fused":
                raise RuntimeError(f"scan='fused' cannot run: {reason}; use scan='parallel'")
            scan = "parallel"
        args, z = self.ssm_inputs(u)
        y = (scan_recurrent if scan == "recurrent" else scan_parallel)(*args)
        y = y * F.silu(z)
        return self.out_proj(y.flatten(-2))

    def scan_on(self, device) -> str:
        """The form ``forward`` runs for inputs on ``device``: "auto" resolves to "fused" (CUDA
        with mamba_ssm importable) or "parallel"; the other forms are themselves."""
        if self.scan != "auto":
            return self.scan
        return "fused" if self._fused_blocker(torch.device(device)) is None else "parallel"

    def _fused_blocker(self, device):
        """Why the fused kernel cannot take input on ``device`` (None if it can)."""
        if device.type != "cuda":
            return f"the input is on {device}, not CUDA"
        if self.rope_fraction not in (0.5, 1.0):
            return f"mamba_ssm accepts rope_fraction 0.5 or 1.0 only, not {self.rope_fraction}"
        return _fused_unavailable_reason()

    def _fused_forward(self, u):
        """Run mamba_ssm's Mamba3 with *this* module's parameters (shared, not copied).

        The upstream module is kept in __dict__, not as a submodule, so our state_dict keys stay
        exactly upstream's and no parameter is duplicated.
        """
        upstream = self.__dict__.get("_upstream")
        if upstream is None:
            from mamba_ssm.modules.mamba3 import Mamba3 as UpstreamMamba3
            upstream = UpstreamMamba3(
                self.d_model, d_state=self.d_state, expand=self.expand, headdim=self.headdim,
                ngroups=self.ngroups, rope_fraction=self.rope_fraction, A_floor=self.A_floor,
                device=u.device, dtype=self.in_proj.weight.dtype)
            self.__dict__["_upstream"] = upstream
        for name, param in self.named_parameters():
            owner, _, leaf = name.rpartition(".")
            setattr(upstream.get_submodule(owner), leaf, param)   # "" names the module itself
        return upstream(u)

    def extra_repr(self):
        return (f"d_model={self.d_model}, d_state={self.d_state}, nheads={self.nheads}, "
                f"headdim={self.headdim}, ngroups={self.ngroups}, "
                f"rope_angles={self.num_rope_angles}, scan={self.scan!r}")
