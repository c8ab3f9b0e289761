"""Golden tests: each baseline against its reference formula, re-derived here independently from the
papers and the authors' public code (mdistiller's KD / DKD, the DTKD distiller, logit-standardization
KD, zhengli97/CTKD), on fixed random logits — values and, where the reference lets them flow,
gradients. Changing a term, a scale or a detach in rltemp makes one of these fail."""

import math

import pytest
import torch
import torch.nn.functional as F

from rltemp.kd.loss import dkd_loss, kd_loss
from rltemp.kd.strategies import StrategyContext, build_strategy, ctkd_lambda

B, C = 24, 13


def logits(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    zs = (2.0 * torch.randn(B, C, generator=g, dtype=torch.float64)).requires_grad_()
    zt = 4.0 * torch.randn(B, C, generator=g, dtype=torch.float64) + 1.0
    y = torch.randint(0, C, (B,), generator=g)
    return zs, zt, y


def same(a: torch.Tensor, b: torch.Tensor, zs: torch.Tensor) -> None:
    """Equal values and equal gradients with respect to the student's logits."""
    assert float(a.detach()) == pytest.approx(float(b.detach()), rel=1e-9, abs=1e-12)
    ga, = torch.autograd.grad(a, zs, retain_graph=True)
    gb, = torch.autograd.grad(b, zs, retain_graph=True)
    assert torch.allclose(ga, gb, rtol=1e-7, atol=1e-12)


def ref_kd(zs, zt, t):  # mdistiller kd_loss: KL(teacher || student) summed over classes, batch mean, × T²
    return F.kl_div(F.log_softmax(zs / t, 1), F.softmax(zt / t, 1), reduction="none").sum(1).mean() * t * t


def test_kd_matches_reference_and_scalar_equals_constant_vector():
    zs, zt, _ = logits()
    for t in (1.0, 4.0, 7.5):
        same(kd_loss(zs, zt, t)[0], ref_kd(zs, zt, t), zs)
        same(kd_loss(zs, zt, torch.full((B,), t, dtype=torch.float64))[0], ref_kd(zs, zt, t), zs)


def test_dkd_matches_mdistiller():
    zs, zt, y = logits(1)

    def ref(alpha, beta, t):
        gt = torch.zeros_like(zs).scatter_(1, y[:, None], 1).bool()
        ps, pt = F.softmax(zs / t, 1), F.softmax(zt / t, 1)

        def split(p):
            return torch.cat([(p * gt).sum(1, keepdim=True), (p * ~gt).sum(1, keepdim=True)], 1)

        tckd = F.kl_div(torch.log(split(ps)), split(pt), reduction="sum") * t**2 / B
        nckd = F.kl_div(F.log_softmax(zs / t - 1000.0 * gt, 1), F.softmax(zt / t - 1000.0 * gt, 1),
                        reduction="sum") * t**2 / B
        return alpha * tckd + beta * nckd

    for alpha, beta, t in ((1.0, 8.0, 4.0), (1.0, 2.0, 1.0), (0.5, 6.0, 3.0)):
        same(dkd_loss(zs, zt, y, t, alpha, beta)[0], ref(alpha, beta, t), zs)


def test_dtkd_objective_is_the_reference_objective_with_gradients_through_the_temperatures():
    zs, zt, y = logits(2)
    zs_pos = (zs.detach().abs() + 0.5).requires_grad_()  # positive max logits, as for a trained student
    epochs = 240
    strategy = build_strategy("dtkd", StrategyContext(C, epochs))

    def ref(z_s, epoch_1based, alpha=3.0, beta=1.0, tau=4.0, warmup=20):
        ms, mt = z_s.max(1, keepdim=True).values, zt.max(1, keepdim=True).values  # no detach in the reference
        ts, tt = 2 * ms / (mt + ms) * tau, 2 * mt / (mt + ms) * tau
        ours = F.kl_div(F.log_softmax(z_s / ts, 1), F.softmax(zt / tt, 1), reduction="none").sum(1, keepdim=True)
        l_dtkd = (ours * tt * ts).mean()
        l_kd = (F.kl_div(F.log_softmax(z_s / tau, 1), F.softmax(zt / tau, 1), reduction="none").sum(1, keepdim=True)
                * tau**2).mean()
        return min(epoch_1based / warmup, 1.0) * (alpha * l_dtkd + beta * l_kd)

    for epoch in (0, 9, 30):  # rltemp's 0-based epoch e is the reference's epoch e + 1
        same(strategy.objective(zs_pos, zt, y, epoch)[0], ref(zs_pos, epoch + 1), zs_pos)
    custom = build_strategy("dtkd:alpha=1,beta=0.5,tau=2,warmup=10", StrategyContext(C, epochs))
    same(custom.objective(zs_pos, zt, y, 3)[0], ref(zs_pos, 4, 1.0, 0.5, 2.0, 10), zs_pos)
    # the warm-up is scaled to short budgets: 20 reference epochs of 240 are 2.5 of a 30-epoch run
    short = build_strategy("dtkd", StrategyContext(C, 30))
    assert float(short.objective(zs_pos, zt, y, 0)[0].detach()) == pytest.approx(float(ref(zs_pos, 20 / 2.5).detach()),
                                                                                 rel=1e-9)


def test_logit_standardization_matches_reference():
    zs, zt, _ = logits(3)
    strategy = build_strategy("ls:2", StrategyContext(C, 30))

    def normalize(z):  # the reference: (z - mean) / (1e-7 + std), std unbiased
        return (z - z.mean(-1, keepdim=True)) / (1e-7 + z.std(-1, keepdim=True))

    ref = F.kl_div(F.log_softmax(normalize(zs) / 2, 1), F.softmax(normalize(zt) / 2, 1),
                   reduction="none").sum(1).mean() * 4
    t = strategy(zt, zs, None, 0.0)
    same(kd_loss(zs, zt, t, strategy.loss_scale(t))[0], ref, zs)  # gradient flows through the student's std


def test_ctkd_temperature_map_initial_value_gradient_reversal_and_lambda_curriculum():
    strategy = build_strategy("ctkd", StrategyContext(C, 240))
    zs, zt, _ = logits(4)
    # reference: global_T initialised to 1, T = t_start + t_end * sigmoid(global_T) = 1 + 20 sigmoid(1)
    t0 = strategy(zt, zs, None, 0.0)
    assert float(t0[0].detach()) == pytest.approx(1 + 20 / (1 + math.exp(-1)), rel=1e-6)
    assert float(strategy.theta) == pytest.approx(1.0, rel=1e-6)

    def ref_lambda(epoch_1based,
                   loops=10):  # CosineDecay(max_value=0, min_value=-1, num_loops=10); GRL multiplies by it
        i = min(max(epoch_1based, 0), loops)
        return ((math.cos(i * math.pi / loops) + 1.0) * 0.5) * (0 - (-1)) + (-1)

    for e in range(0, 14):
        assert -ctkd_lambda(e, 10, 1.0) == pytest.approx(ref_lambda(e + 1), abs=1e-12)
    # the KD loss reaches theta reversed and scaled: d(loss)/d(theta) = ref_lambda * dL/dT * dT/dtheta
    strategy.on_epoch_start(4, 240)
    t = strategy(zt, zs.detach(), None, 0.0)
    loss = kd_loss(zs.detach().float(), zt.float(), t.float())[0]
    (g,) = torch.autograd.grad(loss, strategy.theta)
    theta = strategy.theta.detach().clone().requires_grad_()
    t_plain = 1 + 20 * torch.sigmoid(theta)
    (g_plain,) = torch.autograd.grad(kd_loss(zs.detach().float(), zt.float(), t_plain.expand(B).float())[0], theta)
    assert float(g) == pytest.approx(ref_lambda(5) * float(g_plain), rel=1e-5)
    # the ramp is scaled to the run's budget: 10 epochs of 240 = 1.25 of 30
    short = build_strategy("ctkd", StrategyContext(C, 30))
    short.on_epoch_start(1, 30)
    assert short.lam == pytest.approx(1.0)


def test_dtkd_total_loss_in_the_distiller_uses_the_reference_ce_weight(tiny_overrides):
    """The whole reference objective reaches the optimiser: CE at DTKD's own weight (1) plus its terms."""
    from rltemp.config import load_config
    from rltemp.kd.pipeline import build_student_model, get_teacher, prepare
    from rltemp.kd.trainer import Distiller

    cfg = load_config("envs/mnist1d.yaml", [*tiny_overrides, "distill.temperature=dtkd", "distill.ce_weight=0.1"])
    data, device, strategy = prepare(cfg)
    d = Distiller(cfg.distill, data, build_student_model(cfg, data, 0), get_teacher(cfg, data, device), strategy)
    x, y, idx = next(d.epoch_batches())
    zs, zt = d.forward_batch(x, idx)
    expected = F.cross_entropy(zs, y) + strategy.objective(zs, zt, y, 0)[0]
    res = d.train_step(x, y, idx, logits=(zs, zt))
    assert d.ce_weight == 1.0 and float(res.loss) == pytest.approx(float(expected.detach()), rel=1e-6)
