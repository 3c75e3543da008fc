"""Optimisers against the update rules written out, and against torch.optim."""
import numpy as np
import pytest

from pyxconv.nn import Parameter
from pyxconv.optim import SGD, Adam, AdamW, CosineAnnealingLR, StepLR

RNG = np.random.default_rng(0)


def _quadratic_grads(p, target):
    p.grad[...] = p.data - target  # gradient of 0.5 * |w - target|^2


def test_sgd_momentum_nesterov_weight_decay_follow_the_formulas():
    w0 = RNG.normal(size=5)
    grads = [RNG.normal(size=5) for _ in range(4)]
    for nesterov in (False, True):
        p = Parameter(w0.copy())
        opt = SGD([p], lr=0.1, momentum=0.9, weight_decay=0.01, nesterov=nesterov)
        w, v = w0.copy(), None
        for g in grads:
            p.grad[...] = g
            opt.step()
            d = g + 0.01 * w
            v = d.copy() if v is None else 0.9 * v + d
            w = w - 0.1 * ((d + 0.9 * v) if nesterov else v)
            np.testing.assert_allclose(p.data, w, rtol=1e-12)


def test_adam_follows_the_formulas():
    w = RNG.normal(size=4)
    p = Parameter(w.copy())
    opt = Adam([p], lr=0.01, betas=(0.8, 0.9), eps=1e-6, weight_decay=0.1)
    m = np.zeros(4)
    v = np.zeros(4)
    for t in range(1, 5):
        g = RNG.normal(size=4)
        p.grad[...] = g
        opt.step()
        g = g + 0.1 * w
        m = 0.8 * m + 0.2 * g
        v = 0.9 * v + 0.1 * g * g
        w = w - 0.01 * (m / (1 - 0.8 ** t)) / (np.sqrt(v / (1 - 0.9 ** t)) + 1e-6)
        np.testing.assert_allclose(p.data, w, rtol=1e-12)


def test_adamw_decays_the_weights_apart_from_the_gradient():
    w = RNG.normal(size=4)
    p = Parameter(w.copy())
    opt = AdamW([p], lr=0.01, betas=(0.8, 0.9), eps=1e-6, weight_decay=0.1)
    m = np.zeros(4)
    v = np.zeros(4)
    for t in range(1, 5):
        g = RNG.normal(size=4)
        p.grad[...] = g
        opt.step()
        w = w * (1 - 0.01 * 0.1)
        m = 0.8 * m + 0.2 * g
        v = 0.9 * v + 0.1 * g * g
        w = w - 0.01 * (m / (1 - 0.8 ** t)) / (np.sqrt(v / (1 - 0.9 ** t)) + 1e-6)
        np.testing.assert_allclose(p.data, w, rtol=1e-12)


@pytest.mark.parametrize("make", [
    lambda ps: SGD(ps, lr=0.1),
    lambda ps: SGD(ps, lr=0.05, momentum=0.9, nesterov=True),
    lambda ps: Adam(ps, lr=0.1),
], ids=["sgd", "nesterov", "adam"])
def test_optimisers_minimise_a_quadratic(make):
    target = RNG.normal(size=(3, 3))
    p = Parameter(np.zeros((3, 3)))
    opt = make([p])
    for _ in range(300):
        _quadratic_grads(p, target)
        opt.step()
    np.testing.assert_allclose(p.data, target, atol=1e-3)


def test_optimisers_match_torch_optim():
    torch = pytest.importorskip("torch")
    w0 = RNG.normal(size=(2, 3))
    grads = [RNG.normal(size=(2, 3)) for _ in range(5)]
    cases = [
        (lambda ps: SGD(ps, lr=0.1, momentum=0.9, dampening=0.1, weight_decay=0.01),
         lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, dampening=0.1,
                                    weight_decay=0.01)),
        (lambda ps: SGD(ps, lr=0.1, momentum=0.5, nesterov=True),
         lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.5, nesterov=True)),
        (lambda ps: Adam(ps, lr=0.01, weight_decay=0.1),
         lambda ps: torch.optim.Adam(ps, lr=0.01, weight_decay=0.1)),
        (lambda ps: AdamW(ps, lr=0.01, betas=(0.8, 0.95), weight_decay=0.3),
         lambda ps: torch.optim.AdamW(ps, lr=0.01, betas=(0.8, 0.95), weight_decay=0.3)),
        (lambda ps: AdamW(ps), lambda ps: torch.optim.AdamW(ps)),  # both defaults
    ]
    for ours_make, theirs_make in cases:
        p = Parameter(w0.copy())
        tp = torch.nn.Parameter(torch.tensor(w0.copy()))
        ours, theirs = ours_make([p]), theirs_make([tp])
        for g in grads:
            p.grad[...] = g
            tp.grad = torch.tensor(g)
            ours.step()
            theirs.step()
        np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_schedules():
    p = Parameter(np.zeros(1))
    opt = SGD([p], lr=1.0)
    cos = CosineAnnealingLR(opt, T_max=4)
    lrs = []
    for _ in range(5):
        cos.step()
        lrs.append(opt.lr)
    np.testing.assert_allclose(lrs, [(1 + np.cos(np.pi * t / 4)) / 2 for t in (1, 2, 3, 4, 4)])
    opt.lr = 0.1
    step = StepLR(opt, step_size=3, gamma=0.1)
    for _ in range(3):
        step.step()
    assert opt.lr == pytest.approx(0.01)


def test_bad_arguments_raise():
    p = Parameter(np.zeros(2))
    with pytest.raises(ValueError, match="empty parameter list"):
        SGD([], lr=0.1)
    with pytest.raises(ValueError, match="lr must be >= 0"):
        SGD([p], lr=-1)
    with pytest.raises(ValueError, match="Nesterov"):
        SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(TypeError, match="Parameter"):
        Adam([np.zeros(2)])
    with pytest.raises(ValueError, match="betas"):
        Adam([p], betas=(1.0, 0.9))


# -- state_dict / load_state_dict ------------------------------------------

def _run(make_opt, make_sched, w0, grads, split, tmp_path):
    """Train on ``grads``; after ``split`` steps move the state through an .npz file
    into a fresh optimizer and schedule over a copy of the weights."""
    p = Parameter(w0.copy())
    opt = make_opt([p])
    sched = make_sched(opt)
    for k, g in enumerate(grads):
        if k == split:
            path = tmp_path / "state.npz"
            np.savez(path, **{f"opt/{n}": a for n, a in opt.state_dict().items()},
                     **{f"sched/{n}": a for n, a in sched.state_dict().items()})
            q = Parameter(p.data.copy())
            opt, p = make_opt([q]), q
            sched = make_sched(opt)
            with np.load(path, allow_pickle=False) as f:
                opt.load_state_dict({n[4:]: f[n] for n in f.files if n.startswith("opt/")})
                sched.load_state_dict({n[6:]: f[n] for n in f.files if n.startswith("sched/")})
        p.grad[...] = g
        opt.step()
        sched.step()
    return p.data


@pytest.mark.parametrize("make_opt", [
    lambda ps: SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01, nesterov=True),
    lambda ps: SGD(ps, lr=0.1, momentum=0.5, dampening=0.3),
    lambda ps: Adam(ps, lr=0.01, betas=(0.8, 0.9), weight_decay=0.1),
    lambda ps: AdamW(ps, lr=0.01, weight_decay=0.1),
])
@pytest.mark.parametrize("make_sched", [
    lambda o: StepLR(o, step_size=2, gamma=0.5),
    lambda o: CosineAnnealingLR(o, T_max=5, eta_min=0.001),
])
def test_state_dict_round_trip_continues_bit_for_bit(make_opt, make_sched, tmp_path):
    w0 = RNG.normal(size=(3, 2))
    grads = [RNG.normal(size=(3, 2)) for _ in range(7)]
    whole = _run(make_opt, make_sched, w0, grads, None, tmp_path)
    resumed = _run(make_opt, make_sched, w0, grads, 3, tmp_path)
    # The momentum/moments, step count and schedule position all carry over, so
    # the two runs do the same floating-point operations in the same order.
    np.testing.assert_array_equal(resumed, whole)
    # ... and losing the state does change the trajectory (the test can fail).
    p = Parameter(w0.copy())
    opt, fresh = make_opt([p]), None
    for g in grads[:3]:
        p.grad[...] = g
        opt.step()
    fresh = make_opt([Parameter(p.data.copy())])
    for g in grads[3:]:
        fresh.params[0].grad[...] = g
        fresh.step()
    assert not np.array_equal(fresh.params[0].data, whole)


def test_state_dict_returns_copies():
    p = Parameter(np.ones(2))
    p.grad[:] = 1.0
    opt = SGD([p], lr=0.1, momentum=0.9)
    opt.step()
    state = opt.state_dict()
    state["velocity.0"][:] = 99
    assert opt._velocity[0][0] == 1.0


def test_load_state_dict_rejects_mismatches():
    p = Parameter(np.ones(3))
    sgd = SGD([p], lr=0.1, momentum=0.9)
    adam = Adam([p])
    with pytest.raises(ValueError, match="for a Adam, not a SGD"):
        sgd.load_state_dict(adam.state_dict())
    with pytest.raises(ValueError, match="for 2 parameters, this optimizer has 1"):
        adam.load_state_dict(Adam([Parameter(np.ones(3)), Parameter(np.ones(1))]).state_dict())
    with pytest.raises(ValueError, match=r"'m.0' has shape \(4,\), the parameter has shape \(3,\)"):
        adam.load_state_dict(Adam([Parameter(np.ones(4))]).state_dict())
    broken = adam.state_dict()
    del broken["t"]
    with pytest.raises(ValueError, match="no entry 't'"):
        adam.load_state_dict(broken)
    sched = StepLR(sgd, 2)
    with pytest.raises(ValueError, match="for a CosineAnnealingLR, not a StepLR"):
        sched.load_state_dict(CosineAnnealingLR(sgd, 3).state_dict())
    with pytest.raises(TypeError, match="mapping"):
        sgd.load_state_dict([1, 2])
