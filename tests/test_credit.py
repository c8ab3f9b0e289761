"""How credit reaches decisions: delayed episode-level credit for the schedule (a toy task with a
known best schedule), per-instance credit for online mode's modulator (sums, scale invariance), and
the slot structure the instance VecEnv hands to SB3."""

import math

import gymnasium
import numpy as np
import pytest
import torch

from rltemp.agents.config import load_agent
from rltemp.envs.rewards import alignment, influence
from rltemp.kd.forms import action_to_temperature


class CoolingToy(gymnasium.Env):
    """30 decisions like a 30-epoch run; observation [progress]; the only reward comes at the end:
    −10 · mean_e (log T_e − log T*_e)², with T* cooling from 8 to 1.5 on a log scale. A learner that
    cannot carry credit across the episode cannot find the cooling."""

    observation_space = gymnasium.spaces.Box(0.0, 1.0, (1,), np.float32)
    action_space = gymnasium.spaces.Box(-1.0, 1.0, (1,), np.float32)
    epochs = 30

    @staticmethod
    def target(p: float) -> float:
        return math.exp(math.log(8.0) + (math.log(1.5) - math.log(8.0)) * p)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.e, self.err = 0, 0.0
        return np.zeros(1, np.float32), {}

    def step(self, action):
        t = float(action_to_temperature(torch.as_tensor(action, dtype=torch.float32), 1.0, 10.0)[0])
        self.err += (math.log(t) - math.log(self.target(self.e / self.epochs))) ** 2
        self.e += 1
        done = self.e == self.epochs
        reward = -10.0 * self.err / self.epochs if done else 0.0
        return np.array([self.e / self.epochs], np.float32), reward, done, False, {"temperature": t}


@pytest.mark.slow
def test_default_agent_finds_a_known_cooling_schedule_from_a_delayed_reward():
    from stable_baselines3.common.vec_env import DummyVecEnv

    from rltemp.agents.sb3 import make_model

    agent = load_agent("agents/ppo.yaml")
    venv = DummyVecEnv([CoolingToy, CoolingToy])
    model = make_model(agent.algo, agent.policy, agent.hyperparams, venv, 0, None, "cpu", (1.0, 10.0),
                        n_steps=agent.episodes_per_rollout * CoolingToy.epochs)
    model.learn(total_timesteps=300 * CoolingToy.epochs)  # 300 episodes of 30 decisions
    p = np.linspace(0, 1, 30, endpoint=False, dtype=np.float32)[:, None]
    a, _ = model.predict(p, deterministic=True)
    t = action_to_temperature(torch.as_tensor(a)[:, 0], 1.0, 10.0).numpy()
    target = np.array([CoolingToy.target(x) for x in p[:, 0]])
    assert t[0] > 5.0 and t[-1] < 2.5, t  # hot early, cool late
    assert np.abs(np.log(t) - np.log(target)).mean() < 0.25, t


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
