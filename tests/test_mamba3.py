"""Tests for coverage_lib.models.mamba3: the Mamba-3 SISO block (arXiv 2603.15569).

CPU, float64. The references below are written independently of the module: they re-derive
the projections from the state_dict in upstream's in_proj layout, rotate with explicit 2×2
matrices (the module uses complex multiplication) and run the recurrences token by token.
"""
import io
import math

import pytest
import torch
import torch.nn.functional as F

from coverage_lib.models.mamba3 import Mamba3, rotary_factor, rotate

UPSTREAM_KEYS = {"in_proj.weight", "dt_bias", "B_bias", "C_bias", "B_norm.weight",
                 "C_norm.weight", "D", "out_proj.weight"}
SIZES = [  # batch, length, d_model, d_state, headdim, ngroups, rope_fraction
    (2, 1, 8, 4, 4, 1, 0.5),
    (3, 13, 16, 8, 8, 2, 0.5),
    (2, 9, 12, 6, 6, 1, 1.0),
    (1, 17, 16, 10, 4, 4, 0.3),
]


def make_block(seed=0, d_model=16, d_state=8, headdim=8, ngroups=2, rope_fraction=0.5, **kw):
    """A float64 block with every parameter moved off its init, so no term is trivially 1 or 0.

    dt_bias ~ N(0, 1) gives Δ of order 1 (the default init, Δ ≤ 0.1, would make the SSM part
    of the output tiny and the tests weak).
    """
    torch.manual_seed(seed)
    block = Mamba3(d_model, d_state=d_state, headdim=headdim, ngroups=ngroups,
                   rope_fraction=rope_fraction, **kw).double()
    with torch.no_grad():
        block.dt_bias.normal_()
        for p in (block.B_bias, block.C_bias, block.B_norm.weight, block.C_norm.weight):
            p.add_(0.3 * torch.randn_like(p))
        block.D.normal_()
    return block


def rows(block, name):
    """Row slice of in_proj.weight for one output of upstream's [z, x, B, C, dd_dt, dd_A, trap, angle]."""
    H, G, N, A = block.nheads, block.ngroups, block.d_state, block.num_rope_angles
    sizes = dict(z=block.d_inner, x=block.d_inner, B=G * N, C=G * N, dd_dt=H, dd_A=H, trap=H, angle=A)
    start = 0
    for key, size in sizes.items():
        if key == name:
            return slice(start, start + size)
        start += size


def project(block, u):
    """Independent re-derivation of the scan inputs (per head) from the state_dict."""
    sd = block.state_dict()
    H, G, N, P = block.nheads, block.ngroups, block.d_state, block.headdim
    proj = u @ sd["in_proj.weight"].T
    part = {k: proj[..., rows(block, k)] for k in ("z", "x", "B", "C", "dd_dt", "dd_A", "trap", "angle")}
    group_of_head = torch.arange(H) // (H // G)

    def bc(v, weight, bias):  # RMSNorm per group, expand to heads, add per-head bias
        v = v.unflatten(-1, (G, N))
        v = v / torch.sqrt(v.pow(2).mean(-1, keepdim=True) + 1e-5) * weight
        return v[:, :, group_of_head] + bias[:, 0]

    dt = F.softplus(part["dd_dt"] + sd["dt_bias"])
    A = -torch.maximum(F.softplus(part["dd_A"]), torch.tensor(block.A_floor, dtype=u.dtype))
    theta = torch.cumsum(dt[..., None] * math.pi * torch.tanh(part["angle"])[:, :, None, :], dim=1)
    return dict(x=part["x"].unflatten(-1, (H, P)), z=part["z"].unflatten(-1, (H, P)), dt=dt, A=A,
                lam=torch.sigmoid(part["trap"]), theta=theta, D=sd["D"],
                B=bc(part["B"], sd["B_norm.weight"], sd["B_bias"]),
                C=bc(part["C"], sd["C_norm.weight"], sd["C_bias"]))


def rotate_2x2(v, theta):
    """R(θ) as explicit 2×2 rotations of the pairs (v_2i, v_2i+1), i < theta.shape[-1]."""
    out = v.clone()
    for i in range(theta.shape[-1]):
        c, s = torch.cos(theta[..., i]), torch.sin(theta[..., i])
        out[..., 2 * i] = c * v[..., 2 * i] - s * v[..., 2 * i + 1]
        out[..., 2 * i + 1] = s * v[..., 2 * i] + c * v[..., 2 * i + 1]
    return out


def run_reference(block, u, step, rotary=True):
    """Token loop h_t = step(h_{t-1}, t, ...), y_t = C̃_tᵀh_t + D x_t, then gate and out_proj."""
    p = project(block, u)
    B, C = (rotate_2x2(p["B"], p["theta"]), rotate_2x2(p["C"], p["theta"])) if rotary else (p["B"], p["C"])
    Bx = p["x"][..., :, None] * B[..., None, :]                     # B̃_t x_tᵀ, (b, l, h, P, N)
    h, ys = torch.zeros_like(Bx[:, 0]), []
    for t in range(u.shape[1]):
        alpha = torch.exp(p["dt"][:, t] * p["A"][:, t])[..., None, None]
        dt, lam = p["dt"][:, t, :, None, None], p["lam"][:, t, :, None, None]
        prev = Bx[:, t - 1] if t > 0 else torch.zeros_like(Bx[:, 0])
        h = step(h, alpha, dt, lam, prev, Bx[:, t])
        ys.append((h * C[:, t, :, None, :]).sum(-1) + p["D"][:, None] * p["x"][:, t])
    y = torch.stack(ys, dim=1) * F.silu(p["z"])
    return y.flatten(-2) @ block.state_dict()["out_proj.weight"].T


def exp_trapezoid(h, alpha, dt, lam, prev, cur):      # Mamba-3, general learned λ
    return alpha * h + (1 - lam) * dt * alpha * prev + lam * dt * cur


def mamba2_ssd(h, alpha, dt, lam, prev, cur):         # exponential Euler: Mamba-2's SSD
    return alpha * h + dt * cur


def classical_trapezoid(h, alpha, dt, lam, prev, cur):
    return alpha * h + 0.5 * dt * (alpha * prev + cur)


def output_and_grads(block, u, scan):
    block.scan = scan
    u = u.clone().requires_grad_(True)
    out = block(u)
    weight = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).reshape(out.shape)
    params = list(block.parameters())
    grads = torch.autograd.grad((out * weight).sum(), [u] + params)
    return out.detach(), grads


@pytest.mark.parametrize("batch,length,d_model,d_state,headdim,ngroups,rope_fraction", SIZES)
def test_recurrent_equals_parallel_outputs_and_gradients(batch, length, d_model, d_state, headdim,
                                                         ngroups, rope_fraction):
    block = make_block(1, d_model, d_state, headdim, ngroups, rope_fraction)
    u = torch.randn(batch, length, d_model, dtype=torch.float64)
    out_r, grads_r = output_and_grads(block, u, "recurrent")
    out_p, grads_p = output_and_grads(block, u, "parallel")
    torch.testing.assert_close(out_p, out_r, rtol=1e-10, atol=1e-10)
    names = ["input"] + [n for n, _ in block.named_parameters()]
    for name, g_r, g_p in zip(names, grads_r, grads_p):
        torch.testing.assert_close(g_p, g_r, rtol=1e-10, atol=1e-10, msg=f"gradient of {name}")


@pytest.mark.parametrize("scan", ["recurrent", "parallel"])
@pytest.mark.parametrize("A_floor", [1e-4, 0.5])
def test_matches_independent_reference(scan, A_floor):
    block = make_block(2, scan=scan, A_floor=A_floor)
    u = torch.randn(2, 11, 16, dtype=torch.float64)
    (_, _, A, _, _, _, _, _), _ = block.ssm_inputs(u)
    assert A_floor < 0.1 or (A == -A_floor).any()        # the floor is active in the 0.5 case
    torch.testing.assert_close(block(u), run_reference(block, u, exp_trapezoid), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("scan", ["recurrent", "parallel"])
def test_lambda_one_zero_angle_is_mamba2_ssd(scan):
    block = make_block(3, scan=scan)
    u = torch.randn(2, 13, 16, dtype=torch.float64)
    u[..., 0] = 1.0                                   # a constant input feature drives trap to +60
    with torch.no_grad():
        block.in_proj.weight[rows(block, "trap")] = 0.0
        block.in_proj.weight[rows(block, "trap"), 0] = 60.0
        block.in_proj.weight[rows(block, "angle")] = 0.0
    (_, _, _, lam, _, _, dtheta, _), _ = block.ssm_inputs(u)
    assert torch.all(lam == 1.0) and torch.all(dtheta == 0.0)
    torch.testing.assert_close(block(u), run_reference(block, u, mamba2_ssd, rotary=False),
                               rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("scan", ["recurrent", "parallel"])
def test_lambda_half_is_classical_trapezoid(scan):
    block = make_block(4, scan=scan)
    with torch.no_grad():
        block.in_proj.weight[rows(block, "trap")] = 0.0   # no in_proj bias, so σ(0) = ½ exactly
    u = torch.randn(2, 13, 16, dtype=torch.float64)
    torch.testing.assert_close(block(u), run_reference(block, u, classical_trapezoid), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("scan", ["recurrent", "parallel"])
def test_zero_angles_give_real_valued_ssm(scan):
    block = make_block(5, scan=scan)
    with torch.no_grad():
        block.in_proj.weight[rows(block, "angle")] = 0.0
    u = torch.randn(2, 13, 16, dtype=torch.float64)
    unrotated = run_reference(block, u, exp_trapezoid, rotary=False)
    torch.testing.assert_close(block(u), unrotated, rtol=1e-10, atol=1e-10)


def test_extreme_decay_gives_finite_equal_gradients():
    """exp(c_t - c_s) above the diagonal would overflow; it must be masked before exp."""
    block = make_block(11, A_floor=8.0)
    with torch.no_grad():
        block.dt_bias.fill_(20.0)                         # Δ ≈ 20, so Δ·A ≤ -160 per token
    u = torch.randn(2, 13, 16, dtype=torch.float64)
    out_r, grads_r = output_and_grads(block, u, "recurrent")
    out_p, grads_p = output_and_grads(block, u, "parallel")
    assert all(torch.isfinite(g).all() for g in grads_p)
    torch.testing.assert_close(out_p, out_r, rtol=1e-10, atol=1e-10)
    for g_r, g_p in zip(grads_r, grads_p):
        torch.testing.assert_close(g_p, g_r, rtol=1e-10, atol=1e-10)


def test_rotary_rotates_and_preserves_norms():
    torch.manual_seed(6)
    v, theta = torch.randn(5, 7, 12, dtype=torch.float64), 3 * torch.randn(5, 7, 3, dtype=torch.float64)
    rotated = rotate(v, rotary_factor(theta, 12))
    torch.testing.assert_close(rotated, rotate_2x2(v, theta), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(rotated.norm(dim=-1), v.norm(dim=-1), rtol=1e-12, atol=1e-12)
    pair_norms = lambda w: w.unflatten(-1, (-1, 2)).norm(dim=-1)
    torch.testing.assert_close(pair_norms(rotated), pair_norms(v), rtol=1e-12, atol=1e-12)
    assert torch.equal(rotated[..., 6:], v[..., 6:])     # dims beyond 2·n_angles pass unrotated
    assert (rotated[..., :6] - v[..., :6]).abs().max() > 0.1

    block = make_block(6)
    u = torch.randn(2, 13, 16, dtype=torch.float64)
    with_angles = block(u)
    with torch.no_grad():
        block.in_proj.weight[rows(block, "angle")] = 0.0
    change = (block(u) - with_angles).norm() / with_angles.norm()
    assert change > 1e-2, f"nonzero angles should change the output, relative change {change:.2e}"


def test_state_dict_keys_shapes_and_dt_init():
    block = Mamba3(32, d_state=16, headdim=8, ngroups=2, rope_fraction=0.5, dt_min=0.01, dt_max=0.05)
    sd = block.state_dict()
    assert set(sd) == UPSTREAM_KEYS
    H, G, N = 8, 2, 16                                   # d_inner = 64, 64 / 8 heads
    assert sd["in_proj.weight"].shape == (2 * 64 + 2 * G * N + 3 * H + N // 4, 32)
    assert sd["B_bias"].shape == sd["C_bias"].shape == (H, 1, N)
    assert torch.all(sd["B_bias"] == 1) and torch.all(sd["C_bias"] == 1) and torch.all(sd["D"] == 1)
    dt = F.softplus(sd["dt_bias"])
    assert torch.all(dt >= 0.01 * (1 - 1e-5)) and torch.all(dt <= 0.05 * (1 + 1e-5))


def test_state_dict_round_trip():
    block = make_block(7)
    buffer = io.BytesIO()
    torch.save(block.state_dict(), buffer)
    buffer.seek(0)
    fresh = make_block(8)
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    u = torch.randn(2, 13, 16, dtype=torch.float64)
    assert torch.equal(fresh(u), block(u))


def test_auto_is_parallel_on_cpu():
    block = make_block(9)
    u = torch.randn(2, 13, 16, dtype=torch.float64)
    expected = block(u)
    block.scan = "auto"
    assert torch.equal(block(u), expected)


def _fused_available():
    try:
        import mamba_ssm.modules.mamba3  # noqa: F401
    except Exception:
        return False
    return torch.cuda.is_available()


@pytest.mark.skipif(_fused_available(), reason="fused kernels are available here")
def test_fused_without_cuda_raises_clear_error():
    with pytest.raises(RuntimeError, match=r"scan='fused' needs CUDA and mamba_ssm.*scan='parallel'"):
        Mamba3(16, d_state=8, headdim=8, scan="fused")
    block = Mamba3(16, d_state=8, headdim=8)
    block.scan = "fused"                                  # switched after construction: caught in forward
    with pytest.raises(RuntimeError, match=r"scan='fused' cannot run.*scan='parallel'"):
        block(torch.randn(1, 3, 16))


@pytest.mark.parametrize("kwargs,param", [
    (dict(d_model=10, headdim=8), "headdim"),
    (dict(d_model=0), "d_model"),
    (dict(d_model=16, d_state=7), "d_state"),
    (dict(d_model=16, headdim=8, ngroups=3), "ngroups"),
    (dict(d_model=16, rope_fraction=0.0), "rope_fraction"),
    (dict(d_model=16, rope_fraction=1.5), "rope_fraction"),
    (dict(d_model=16, d_state=2, rope_fraction=0.5), "rope_fraction"),
    (dict(d_model=16, scan="chunked"), "scan"),
    (dict(d_model=16, dt_min=0.1, dt_max=0.01), "dt_min"),
    (dict(d_model=16, A_floor=-1.0), "A_floor"),
])
def test_bad_arguments_raise_value_error(kwargs, param):
    kwargs = {"headdim": 8, **kwargs}
    with pytest.raises(ValueError, match=param):
        Mamba3(**kwargs)


@pytest.mark.skipif(not _fused_available(), reason="needs CUDA and an importable mamba_ssm")
class TestAgainstMambaSsmKernel:
    """Our parallel form vs mamba_ssm.modules.mamba3.Mamba3 sharing one state_dict.

    Tolerance ~5e-2 relative: the Triton kernels keep bf16 chunk states.
    """

    @pytest.mark.parametrize("length", [13, 200])
    def test_parallel_matches_upstream(self, length):
        from mamba_ssm.modules.mamba3 import Mamba3 as UpstreamMamba3
        torch.manual_seed(10)
        config = dict(d_state=64, headdim=64, ngroups=1, rope_fraction=0.5)
        ours = Mamba3(256, scan="parallel", **config).cuda()
        upstream = UpstreamMamba3(256, **config).cuda()
        upstream.load_state_dict(ours.state_dict())
        u = torch.randn(4, length, 256, device="cuda")
        expected, got = upstream(u), ours(u)
        assert (got - expected).norm() / expected.norm() < 5e-2
        ours.scan = "fused"
        torch.testing.assert_close(ours(u), expected)

    @pytest.mark.parametrize("d_model, d_state, headdim", [(256, 64, 64), (32, 16, 16)],
                             ids=["upstream-sizes", "paper-sizes"])
    def test_fused_matches_parallel_outputs_and_gradients(self, d_model, d_state, headdim):
        """One block, one state dict: the fused kernel against the parallel form on a batch of
        13-token rows, in outputs and in the gradients of the input and every parameter."""
        torch.manual_seed(11)
        block = Mamba3(d_model, d_state=d_state, headdim=headdim, scan="parallel").cuda()
        u = torch.randn(64, 13, d_model, device="cuda", requires_grad=True)
        weights = torch.randn(64, 13, d_model, device="cuda")

        def run(scan):
            block.scan, u.grad = scan, None
            block.zero_grad()
            out = block(u)
            (out * weights).sum().backward()
            return out.detach(), {"input": u.grad.clone(),
                                  **{n: p.grad.clone() for n, p in block.named_parameters()}}

        (ref, ref_grads), (got, got_grads) = run("parallel"), run("fused")
        assert (got - ref).norm() / ref.norm() < 5e-2
        for name, grad in ref_grads.items():
            assert (got_grads[name] - grad).norm() / grad.norm().clamp(min=1e-6) < 1e-1, name
