import math

import pytest
import torch
import torch.nn.functional as F

from rltemp.errors import ConfigError, UnknownNameError
from rltemp.kd.loss import kd_loss
from rltemp.kd.strategies import StrategyContext, build_strategy, ctkd_lambda

CTX = StrategyContext(num_classes=5, epochs=20)


def _logits(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(8, 5, generator=g) * 2 + 1, torch.randn(8, 5, generator=g) * 4 + 2


def test_ls_matches_closed_form():
    zs, zt = _logits()
    s = build_strategy("ls:2", CTX)
    t = s(zt, zs, None, 0.0)
    _, per = kd_loss(zs, zt, t, s.loss_scale(t))

    def z(v):
        return (v - v.mean(-1, keepdim=True)) / (v.std(-1, keepdim=True) + 1e-7)

    pt = F.softmax(z(zt) / 2, -1)
    ref = (pt * (pt.log() - F.log_softmax(z(zs) / 2, -1))).sum(-1) * 4
    assert torch.allclose(per, ref, atol=1e-5)


def test_dtkd_matches_formula():
    zs, zt = _logits()
    t = build_strategy("dtkd:4", CTX)(zt, zs, None, 0.0)
    mt, ms = zt.max(-1).values, zs.max(-1).values
    assert torch.allclose(t[:, 0], 2 * mt / (mt + ms) * 4)
    assert torch.allclose(t[:, 1], 2 * ms / (mt + ms) * 4)
    # the sharper model (larger max logit) gets the higher temperature
    assert ((t[:, 0] > t[:, 1]) == (mt > ms)).all()


def test_fixed_and_anneal():
    zs, zt = _logits()
    assert torch.equal(build_strategy("fixed:3", CTX)(zt, zs, None, 0.5), torch.full((8,), 3.0))
    a = build_strategy("anneal:8,2,linear", CTX)
    assert a(zt, zs, None, 0.0)[0] == 8 and a(zt, zs, None, 1.0)[0] == 2 and a(zt, zs, None, 0.5)[0] == 5
    c = build_strategy("anneal:start=4,end=1", CTX)
    assert c(zt, zs, None, 0.0)[0] == pytest.approx(4) and c(zt, zs, None, 1.0)[0] == pytest.approx(1)


def test_ctkd_lambda_curriculum():
    # 0-based epoch e; the reference counts epochs from 1, so lambda(e) uses e + 1
    assert ctkd_lambda(0, 10, 1.0) == pytest.approx((1 - math.cos(math.pi / 10)) / 2)
    assert ctkd_lambda(4, 10, 1.0) == pytest.approx(0.5)
    assert ctkd_lambda(9, 10, 1.0) == pytest.approx(1.0)
    assert ctkd_lambda(30, 10, 1.0) == pytest.approx(1.0)
    vals = [ctkd_lambda(e, 10, 1.0) for e in range(11)]
    assert vals == sorted(vals)


@pytest.mark.parametrize("spec", ["ctkd", "ctkd-instance"])
def test_ctkd_step_increases_kd_loss(spec):
    zs, zt = _logits()
    s = build_strategy(spec, CTX)
    s.on_epoch_start(10, 20)  # lambda = 1
    opt = torch.optim.SGD(s.parameters(), lr=0.5)

    def loss():
        return kd_loss(zs, zt, s(zt, zs, None, 0.5))[0]

    before = loss()
    opt.zero_grad()
    before.backward()  # the optimiser minimises; the reversal makes theta climb the KD loss
    opt.step()
    with torch.no_grad():
        after = loss()
    assert after > before.detach()
    # at lambda = 0 theta does not move
    s.lam = 0.0
    opt.zero_grad()
    loss().backward()
    assert all(p.grad is None or torch.count_nonzero(p.grad) == 0 for p in s.parameters())


def test_ctkd_starts_at_init_temperature():
    zs, zt = _logits()
    t = build_strategy("ctkd:init=4", CTX)(zt, zs, None, 0.0)
    assert torch.allclose(t, torch.full((8,), 4.0), atol=1e-5)


def test_spec_errors_are_clear():
    with pytest.raises(UnknownNameError, match="did you mean 'fixed'"):
        build_strategy("fixd:4", CTX)
    with pytest.raises(ConfigError, match="T must be a finite number > 0"):
        build_strategy("fixed:0", CTX)
    with pytest.raises(ConfigError, match="T must be a finite number > 0"):
        build_strategy("fixed:nan", CTX)
    with pytest.raises(ConfigError, match="not a number"):
        build_strategy("fixed:abc", CTX)
    with pytest.raises(ConfigError, match="needs T"):
        build_strategy("fixed", CTX)
    with pytest.raises(ConfigError, match="unknown argument 'tua'"):
        build_strategy("ls:tua=2", CTX)
    assert build_strategy("ce", CTX) is None
    assert math.isfinite(build_strategy("dtkd", CTX).tau)
