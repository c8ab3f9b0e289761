"""Every instance feature against a plain reference formula (topk, explicit sums), ties included
(the fast shared intermediate, the student's top-2 by two max passes, must give the same values);
and the scale-free student/teacher statistics a schedule reads, against theirs and their invariances."""

from __future__ import annotations

import math

import pytest
import torch

from rltemp.kd.features import FEATURES, FeatureInput, compute_features


def _input(seed: int = 0, b: int = 64, c: int = 10) -> FeatureInput:
    g = torch.Generator().manual_seed(seed)
    zs, zt = torch.randn(b, c, generator=g) * 3, torch.randn(b, c, generator=g) * 3
    zs[0, :] = 0.0  # all classes tied: top-1 = top-2
    zs[1, 3] = zs[1, 7] = 5.0  # two tied maxima
    zt[2, :] = 0.0
    y = torch.randint(0, c, (b,), generator=g)
    return FeatureInput(zs, zt, y)


def _reference(inp: FeatureInput) -> dict[str, torch.Tensor]:
    ls, lt = torch.log_softmax(inp.student_logits.double(), -1), torch.log_softmax(inp.teacher_logits.double(), -1)
    ps, pt = ls.exp(), lt.exp()
    top_s = ps.topk(2, -1)
    return {
        "p_t_top1": pt.max(-1).values,
        "p_s_top1": top_s.values[:, 0],
        "margin_s": top_s.values[:, 0] - top_s.values[:, 1],
    }


@pytest.mark.parametrize("seed", [0, 1])
def test_instance_features_match_reference_formulas(seed: int) -> None:
    inp = _input(seed)
    ref = _reference(inp)
    for name, want in ref.items():
        got = FEATURES.get(name)(inp).double()
        assert got.shape == want.shape, name
        assert torch.allclose(got, want, atol=1e-6), (name, (got - want).abs().max())


def test_ties_give_zero_margin_and_count_as_top1() -> None:
    inp = _input()
    inp.labels[1] = 3  # one of row 1's two tied maxima
    v = inp.top2_s
    assert v[0, 0] == pytest.approx(0.1) and v[0, 1] == pytest.approx(0.1)  # ten classes, all tied
    assert float(v[1, 0] - v[1, 1]) == 0.0  # two tied maxima: margin 0
    assert (v[2:, 0] > v[2:, 1]).all()
    # with ties, "the student's top-1 class" is any of the tied classes
    assert bool(inp.s_correct[0]) and bool(inp.s_correct[1]) and float(FEATURES.get("margin_s")(inp)[0]) == 0.0


def test_compute_features_stacks_in_order_within_unit_interval() -> None:
    inp = _input()
    names = ["margin_s", "p_t_top1", "p_s_top1"]
    x = compute_features(names, inp)
    assert x.shape == (64, 3) and x.dtype == torch.float32
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    ref = _reference(inp)
    for j, name in enumerate(names):
        assert torch.allclose(x[:, j].double(), ref[name], atol=1e-6), name


def _val_features(zs, zt, y):
    from rltemp.kd.features import VAL_DOCS, GlobalState, global_features, validation_stats

    state = GlobalState(0.5, 0.0, 0.0, validation_stats(zs, zt, y))
    return dict(zip(VAL_DOCS, global_features(list(VAL_DOCS), state).tolist(), strict=True))


def test_student_teacher_features_match_their_formulas():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 12, (500,), generator=g)
    zt = torch.randn(500, 12, generator=g) + 3 * torch.nn.functional.one_hot(y, 12)  # a teacher that knows
    zs = torch.randn(500, 12, generator=g) + 1 * torch.nn.functional.one_hot(y, 12)  # a student that knows less
    f = _val_features(zs, zt, y)
    ps, pt = torch.softmax(zs, -1), torch.softmax(zt, -1)
    acc_s, acc_t = (zs.argmax(-1) == y).float().mean(), (zt.argmax(-1) == y).float().mean()
    log_c = math.log(12)
    assert f["rel_acc"] == pytest.approx(float(acc_s / acc_t), abs=1e-6)
    assert f["agreement"] == pytest.approx(float((zs.argmax(-1) == zt.argmax(-1)).float().mean()), abs=1e-6)
    assert f["kl_teacher"] == pytest.approx(float((pt * (pt.log() - ps.log())).sum(-1).mean()) / log_c, abs=1e-5)
    assert f["student_entropy"] == pytest.approx(float(-(ps * ps.log()).sum(-1).mean()) / log_c, abs=1e-5)
    assert f["teacher_entropy"] == pytest.approx(float(-(pt * pt.log()).sum(-1).mean()) / log_c, abs=1e-5)


def test_student_teacher_features_are_invariant_to_classes_count_and_logit_shift():
    """The same situation reads the same: a class permutation, a constant shift of either logits, and
    the number of classes (a student equal to its teacher, a uniform student, at 10 and 110 classes)."""
    g = torch.Generator().manual_seed(1)
    zs, zt = torch.randn(300, 20, generator=g), 2 * torch.randn(300, 20, generator=g)
    y = torch.randint(0, 20, (300,), generator=g)
    base = _val_features(zs, zt, y)
    perm = torch.randperm(20, generator=g)
    inv = torch.argsort(perm)
    assert _val_features(zs[:, perm], zt[:, perm], inv[y]) == pytest.approx(base, abs=1e-6)
    assert _val_features(zs + 7.0, zt - 3.0, y) == pytest.approx(base, abs=1e-5)
    for c in (10, 110):
        zt_c = 4 * torch.randn(400, c, generator=g)
        y_c = zt_c.argmax(-1)  # a teacher that is always right
        same = _val_features(zt_c.clone(), zt_c, y_c)
        assert (same["rel_acc"], same["agreement"], same["kl_teacher"]) == pytest.approx((1.0, 1.0, 0.0), abs=1e-6)
        flat = _val_features(torch.zeros(400, c), zt_c, y_c)
        assert flat["student_entropy"] == pytest.approx(1.0) and flat["kl_teacher"] == pytest.approx(
            1.0 - _val_features(zt_c, zt_c, y_c)["teacher_entropy"], abs=1e-5)  # KL(p_t‖u) = log C − H(p_t)
