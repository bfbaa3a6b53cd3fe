"""PPO's pieces against independent formulas: GAE as explicit discounted sums, the clipped losses by hand."""

from __future__ import annotations

import torch

from system2.selfimprove.ppo_math import gae, ppo_losses


def _gae_brute_force(r: list[float], v: list[float], gamma: float, lam: float) -> list[float]:
    """A_t = sum_l (gamma*lam)^l delta_{t+l}, delta_t = r_t + gamma*V_{t+1} - V_t, V after the end = 0."""
    n = len(r)
    vv = v + [0.0]
    deltas = [r[t] + gamma * vv[t + 1] - vv[t] for t in range(n)]
    return [sum((gamma * lam) ** (s - t) * deltas[s] for s in range(t, n)) for t in range(n)]


def test_gae_matches_explicit_sums_on_masked_rows() -> None:
    g = torch.Generator().manual_seed(0)
    for gamma, lam in [(1.0, 0.95), (0.9, 1.0), (1.0, 0.0)]:
        rewards = torch.randn(3, 7, generator=g)
        values = torch.randn(3, 7, generator=g)
        mask = torch.zeros(3, 7, dtype=torch.bool)
        mask[0, 2:7] = True  # response at the end of the row
        mask[1, 1:4] = True  # response followed by padding
        mask[2, 0:7] = True
        adv = gae(rewards, values, mask, gamma, lam)
        for b in range(3):
            idx = mask[b].nonzero().flatten().tolist()
            ref = _gae_brute_force(rewards[b, idx].tolist(), values[b, idx].tolist(), gamma, lam)
            torch.testing.assert_close(adv[b, idx], torch.tensor(ref), rtol=1e-5, atol=1e-5)
            assert torch.all(adv[b, ~mask[b]] == 0)


def test_monte_carlo_return_when_lambda_is_one() -> None:
    rewards = torch.tensor([[0.0, 0.0, 1.0]])
    values = torch.tensor([[0.2, 0.5, 0.9]])
    adv = gae(rewards, values, torch.ones(1, 3, dtype=torch.bool), 1.0, 1.0)
    torch.testing.assert_close(adv + values, torch.ones(1, 3))  # return = final reward at every step


def test_clipped_losses_by_hand() -> None:
    logp = torch.log(torch.tensor([[0.5, 0.9]]))
    old = torch.log(torch.tensor([[0.25, 0.9]]))  # ratio 2.0 and 1.0
    adv = torch.tensor([[1.0, -1.0]])
    mask = torch.ones(1, 2, dtype=torch.bool)
    values, old_values, returns = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, 1.0]])
    pg, vf, stats = ppo_losses(logp, old, adv, values, old_values, returns, mask, clip=0.2, value_clip=0.2)
    # token 1: max(-1*2, -1*1.2) = -1.2; token 2: max(1*1, 1*1) = 1 -> mean -0.1
    torch.testing.assert_close(pg, torch.tensor(-0.1))
    # value 1: max((1-1)^2, (0.2-1)^2)/2 = 0.32; value 2: max(1, 1)/2 = 0.5 -> mean 0.41
    torch.testing.assert_close(vf, torch.tensor(0.41))
    assert stats["clip_fraction"] == 0.5
    # masked positions do not count
    pg2, _, _ = ppo_losses(logp, old, adv, values, old_values, returns, torch.tensor([[True, False]]), 0.2, 0.2)
    torch.testing.assert_close(pg2, torch.tensor(-1.2))
