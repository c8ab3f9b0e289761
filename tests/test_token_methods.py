"""AdaKD and ATKD against their reference rules, written out token by token here (golden tests)."""

import math
from types import SimpleNamespace

import pytest
import torch

from rltemp.errors import ConfigError
from rltemp.kd import StrategyContext, build_strategy
from rltemp.kd.token_methods import adakd_temperatures

CTX = StrategyContext(num_classes=7, epochs=2)


def logits(n=12, v=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (3 * torch.randn(n, v, generator=g), 3 * torch.randn(n, v, generator=g),
            torch.randint(0, v, (n,), generator=g))


def probs(z):
    e = [math.exp(x) for x in z]
    return [x / sum(e) for x in e]


def kl(p, q):
    return sum(a * math.log(a / b) for a, b in zip(p, q) if a > 0)


def test_adakd_temperatures_follow_the_reference_formula():
    s = torch.tensor([0.1, 0.2, 0.4, 0.8])  # lower median 0.2
    t = adakd_temperatures(s, 2.0, 0.5)
    want = [2.0 * math.exp(-0.5 * math.tanh(math.log(x / 0.2))) for x in (0.1, 0.2, 0.4, 0.8)]
    assert t.tolist() == pytest.approx(want)
    assert t[0] > 2.0 == pytest.approx(t[1].item()) and t[3] < t[2] < 2.0  # harder -> colder
    assert adakd_temperatures(s, 2.0, 0.5, soften=True).tolist() == pytest.approx([4.0 / w for w in want])


@pytest.mark.parametrize("divergence", ["rkl", "kl"])
def test_adakd_selects_the_hardest_tokens_and_weights_by_t_squared(divergence):
    zs, zt, y = logits()
    ada = build_strategy(f"adakd:loss={divergence}", CTX)
    ada.attach(SimpleNamespace(kd_weight=0.9, step_count=0, total_steps=100))
    ada.ratio.fill_(0.5)
    zs.requires_grad_(True)
    loss, per, temps = ada.objective(zs, zt, y, 0)
    # the reference, token by token
    rows = []
    for i in range(12):
        ps, pt = probs(zs[i].tolist()), probs(zt[i].tolist())
        rows.append((math.sqrt(sum((math.sqrt(a) - math.sqrt(b)) ** 2 for a, b in zip(ps, pt)) / 2), i))
    chosen = sorted(rows, reverse=True)[:6]
    med = sorted(s for s, _ in chosen)[2]  # torch.median: the lower of the two middle values
    want = 0.0
    for s, i in chosen:
        t = math.exp(-0.5 * math.tanh(math.log(s / med)))
        ps, pt = probs([x / t for x in zs[i].tolist()]), probs([x / t for x in zt[i].tolist()])
        want += t * t * (kl(ps, pt) if divergence == "rkl" else kl(pt, ps)) / 6
        assert temps[i].item() == pytest.approx(t, rel=1e-5)
    assert loss.item() == pytest.approx(0.9 * want, rel=1e-5)
    assert per.mean().item() == pytest.approx(loss.item(), rel=1e-5)
    unselected = sorted(set(range(12)) - {i for _, i in chosen})
    assert (per[unselected] == 0).all() and (temps[unselected] == 1.0).all()
    loss.backward()  # as in the reference, only the selected tokens' logits get a gradient
    assert (zs.grad[unselected] == 0).all() and (zs.grad[[i for _, i in chosen]].abs().sum(-1) > 0).all()


def test_latf_moves_the_ratio_as_the_reference_loop():
    ada = build_strategy("adakd", CTX)
    run = SimpleNamespace(kd_weight=1.0, step_count=0, total_steps=40)  # warm-up: 0.05 * 40 = 2 steps
    ada.attach(run)
    ratio, ema, prev, seen = 1.0, None, None, []
    for step, loss in enumerate([1.0] * 3 + [0.0] * 20 + [5.0] * 30):
        run.step_count = step
        ada._latf(loss)
        ema = loss if ema is None else 0.99 * ema + 0.01 * loss
        if prev is None:
            prev = ema if step + 1 > 2 else None
        elif prev - ema < -0.05 * prev:
            ratio, prev = min(ratio * 1.05, 1.0), ema
        elif prev - ema > 0.05 * prev:
            ratio, prev = max(ratio * 0.95, 0.1), ema
        assert float(ada.ratio) == pytest.approx(ratio) and float(ada.ema) == pytest.approx(ema)
        seen.append(ratio)
    assert min(seen) < 0.9 and seen[-1] > min(seen)  # the loss fell: the focus narrowed; it rose: it widened ...
    assert ada.state_dict().keys() >= {"ratio", "ema", "prev"}  # ... and the state resumes with the run


def test_atkd_splits_tokens_at_the_median_teacher_uncertainty():
    zs, zt, y = logits(n=9)
    atkd = build_strategy("atkd", CTX)
    assert atkd.ce_weight == 0.0  # the reference trains on ATKD's loss alone
    loss, per, temps = atkd.objective(zs, zt, y, 0)
    u = [1 - probs(zt[i].tolist())[y[i]] for i in range(9)]
    med = sorted(u)[4]
    terms = []
    for i in range(9):
        ps, pt, g = probs(zs[i].tolist()), probs(zt[i].tolist()), int(y[i])
        tckd = kl([pt[g], 1 - pt[g]], [ps[g], 1 - ps[g]])
        rest = [j for j in range(7) if j != g]
        nckd = kl(probs([zt[i, j].item() for j in rest]), probs([zs[i, j].item() for j in rest]))
        terms.append((u[i] < med, tckd, nckd))
    easy = [n for e, _, n in terms if e]
    hard = [(t, n) for e, t, n in terms if not e]
    want = 0.2 * sum(easy) / len(easy) + 0.8 * (sum(t for t, _ in hard) + sum(n for _, n in hard)) / len(hard)
    assert len(easy) == 4 and loss.item() == pytest.approx(want, rel=1e-5)
    assert per.mean().item() == pytest.approx(want, rel=1e-5) and (temps == 1).all()


@pytest.mark.parametrize("spec, message", [
    ("adakd:c=-1", "c must be"), ("adakd:loss=js", "loss must be"), ("adakd:soften=2", "soften"),
    ("adakd:base=0", "base must be"), ("atkd:alpha=1.5", "alpha must lie"), ("atkd:ce=-1", "ce must be"),
])
def test_bad_arguments_say_which_and_why(spec, message):
    with pytest.raises(ConfigError, match=message):
        build_strategy(spec, CTX)
