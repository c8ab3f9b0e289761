"""How credit reaches decisions: per-instance credit for online mode's modulator (sums, scale
invariance), and the slot structure the instance VecEnv hands to SB3."""


import pytest
import torch

from rltemp.envs.rewards import alignment, influence


def test_influence_sums_exactly_and_cannot_be_bought_with_scale():
    g = torch.Generator().manual_seed(0)
    b, c, h = 8, 5, 6
    delta, hid = torch.randn(b, c, generator=g), torch.randn(b, h, generator=g)
    g_w, g_b = torch.randn(c, h, generator=g), torch.randn(c, generator=g)
    align = alignment(delta, hid, g_w, g_b)
    assert (align.abs() <= 1 + 1e-9).all()
    for reward in (2.5, -1.0, 0.0):
        r = influence(reward, align)
        assert r.shape == (b,) and float(r.sum()) == pytest.approx(reward, abs=1e-9)
        assert float(r.std()) > 0  # each instance its own share
    # the better an instance's update agrees with the validation descent direction, the larger its share
    assert torch.equal(torch.argsort(influence(1.0, align)), torch.argsort(align))
    # inflate instance 2's loss scale (what a hotter T does to T²-scaled KD): its credit is unchanged
    inflated = delta.clone()
    inflated[2] *= 7.0
    align2 = alignment(inflated, hid, g_w, g_b)
    assert torch.allclose(align2, align)
    assert torch.allclose(influence(1.0, align2), influence(1.0, align))
    # the cosine with the validation descent direction: a gradient along −G scores +1, along +G −1
    d1 = -g_b[None]  # h = 0: only the bias part of g_i = [δ hᵀ, δ] is non-zero
    assert float(alignment(d1, torch.zeros(1, h), torch.zeros(c, h), g_b)) == pytest.approx(1.0)
    assert float(alignment(-d1, torch.zeros(1, h), torch.zeros(c, h), g_b)) == pytest.approx(-1.0)


def test_low_rank_alignment_is_within_its_bound_and_exact_at_full_rank():
    """rank r: each cosine moves by at most ‖G − G_r‖ / ‖G‖ (Cauchy–Schwarz); r >= C is the exact rule."""
    g = torch.Generator().manual_seed(3)
    b, c, h = 200, 12, 20
    delta, hid = torch.randn(b, c, generator=g), torch.randn(b, h, generator=g)
    # a validation gradient with a decaying spectrum, as measured ones have
    g_w = torch.randn(c, h, generator=g) * torch.logspace(0, -1.5, c)[:, None]
    g_b = torch.randn(c, generator=g) * 0.1
    exact = alignment(delta, hid, g_w, g_b)
    full = torch.cat([g_w, g_b[:, None]], 1).double()
    sv = torch.linalg.svdvals(full)
    for r in (1, 4, 8):
        bound = float(torch.sqrt((sv[r:] ** 2).sum() / (sv ** 2).sum()))
        err = float((alignment(delta, hid, g_w, g_b, rank=r) - exact).abs().max())
        assert 0 < err <= bound + 1e-9, (r, err, bound)
    assert torch.allclose(alignment(delta, hid, g_w, g_b, rank=c), exact)  # r >= C: exact
    assert float((alignment(delta, hid, g_w, g_b, rank=8) - exact).abs().max()) < \
        float((alignment(delta, hid, g_w, g_b, rank=1) - exact).abs().max())
    # scale invariance holds at any rank
    assert torch.allclose(alignment(delta * 5.0, hid, g_w, g_b, rank=4), alignment(delta, hid, g_w, g_b, rank=4))

def test_validation_gradient_is_the_last_layers_mean_ce_gradient():
    """evaluate_with_gradient: evaluate()'s accuracy and loss, and the autograd gradient of the mean
    validation CE with respect to the classifier's weight and bias, from one eval-mode pass."""
    from conftest import TINY

    from rltemp.config import load_config
    from rltemp.envs.rewards import InputCapture, evaluate_with_gradient, last_linear
    from rltemp.kd.pipeline import prepare_data
    from rltemp.kd.trainer import evaluate
    from rltemp.models import build_model

    cfg = load_config("envs/mnist1d.yaml", TINY)
    data, _ = prepare_data(cfg)
    torch.manual_seed(0)
    model = build_model(cfg.student.model, data.input_shape, data.num_classes, cfg.student.options)
    layer = last_linear(model, data.num_classes)
    cap = InputCapture(layer)
    model.train()
    acc, loss, g_w, g_b = evaluate_with_gradient(model, cap, data.val, data, batch_size=64)  # several batches
    assert model.training  # its mode restored
    assert (acc, loss) == pytest.approx(evaluate(model, data.val, data))
    model.eval()
    x = torch.cat([data.preprocess(xb, False, None) for xb, _, _ in data.val.batches(1024)])
    y = torch.cat([yb for _, yb, _ in data.val.batches(1024)])
    torch.nn.functional.cross_entropy(model(x), y).backward()
    assert torch.allclose(g_w, layer.weight.grad, atol=1e-6) and torch.allclose(g_b, layer.bias.grad, atol=1e-6)
    cap.remove()
