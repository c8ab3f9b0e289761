import math

import pytest
import torch
import torch.nn.functional as F

from rltemp.kd.loss import kd_loss


def _logits(b=6, c=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, c, generator=g) * 3, torch.randn(b, c, generator=g) * 3


def test_constant_vector_equals_scalar_exactly():
    zs, zt = _logits()
    m1, p1 = kd_loss(zs, zt, 4.0)
    m2, p2 = kd_loss(zs, zt, torch.full((6,), 4.0))
    m3, p3 = kd_loss(zs, zt, torch.full((6, 2), 4.0))
    assert torch.equal(p1, p2) and torch.equal(p1, p3) and torch.equal(m1, m2)


def test_matches_hinton_formula_per_instance():
    zs, zt = _logits()
    t = torch.tensor([1.0, 2.0, 3.0, 4.0, 6.0, 10.0])
    _, per = kd_loss(zs, zt, t)
    for i in range(6):
        pt = F.softmax(zt[i] / t[i], -1)
        ref = (pt * (pt.log() - F.log_softmax(zs[i] / t[i], -1))).sum() * t[i] ** 2
        assert per[i].item() == pytest.approx(ref.item(), rel=1e-5)


def test_pair_uses_separate_temperatures_and_product_scale():
    zs, zt = _logits()
    pair = torch.tensor([[2.0, 5.0]]).expand(6, 2)
    _, per = kd_loss(zs, zt, pair)
    pt = F.softmax(zt / 2.0, -1)
    ref = (pt * (pt.log() - F.log_softmax(zs / 5.0, -1))).sum(-1) * 10.0
    assert torch.allclose(per, ref, atol=1e-6)


def test_identical_logits_give_zero_and_loss_is_nonnegative():
    zs, zt = _logits()
    assert torch.allclose(kd_loss(zs, zs, 3.0)[1], torch.zeros(6), atol=1e-6)
    assert (kd_loss(zs, zt, 3.0)[1] >= -1e-6).all()


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, math.inf])
def test_bad_temperature_is_rejected(bad):
    zs, zt = _logits()
    with pytest.raises(ValueError, match="temperature"):
        kd_loss(zs, zt, bad)
    with pytest.raises(ValueError, match="temperature"):
        kd_loss(zs, zt, torch.tensor([bad] * 6))


def test_wrong_shape_is_rejected():
    zs, zt = _logits()
    with pytest.raises(ValueError, match="shape"):
        kd_loss(zs, zt, torch.ones(5))
