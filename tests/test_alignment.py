"""The aligner module: MAS against brute force, prior, losses, masking, and that it learns."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from tts_cli.models.alignment import (Aligner, AlignmentEncoder, BinarizationLoss, ForwardSumLoss, _mas_reference,
                                      beta_binomial_prior, binarize, durations_from_hard, lengths_to_mask, mas,
                                      mas_batch, prior_batch)

NVIDIA_ATTENTION_SHAPES = {  # /work/shared/reference/nvidia_fastpitch_state_dict.json, under `attention.`
    "query_proj.0.conv.weight": (160, 80, 3), "query_proj.0.conv.bias": (160,),
    "query_proj.2.conv.weight": (80, 160, 1), "query_proj.2.conv.bias": (80,),
    "query_proj.4.conv.weight": (80, 80, 1), "query_proj.4.conv.bias": (80,),
    "attn_proj.weight": (1, 80, 1, 1), "attn_proj.bias": (1,),
    "key_proj.0.conv.weight": (768, 384, 3), "key_proj.0.conv.bias": (768,),
    "key_proj.2.conv.weight": (80, 768, 1), "key_proj.2.conv.bias": (80,),
}


# ----------------------------------------------------------------------------- MAS

def brute_force_path(log_attn: np.ndarray) -> tuple[float, list[int]]:
    """Best monotonic path by enumerating every duration split (each symbol >= 1 frame)."""
    t_mel, t_text = log_attn.shape
    best = (-np.inf, None)
    # choose t_text-1 cut points among the t_mel-1 gaps between frames
    for cuts in itertools.combinations(range(1, t_mel), t_text - 1):
        bounds = (0, *cuts, t_mel)
        path = [j for j in range(t_text) for _ in range(bounds[j + 1] - bounds[j])]
        score = float(sum(log_attn[i, j] for i, j in enumerate(path)))
        if score > best[0]:
            best = (score, path)
    return best


@pytest.mark.parametrize("seed", range(12))
def test_mas_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    t_text = int(rng.integers(1, 5))
    t_mel = int(rng.integers(t_text, 9))
    log_attn = np.log(rng.dirichlet(np.ones(t_text), size=t_mel))
    best_score, best_path = brute_force_path(log_attn)
    for fn in (mas, _mas_reference):
        hard = fn(log_attn)
        assert hard.shape == (t_mel, t_text)
        assert (hard.sum(1) == 1).all()
        path = hard.argmax(1)
        assert path[0] == 0 and path[-1] == t_text - 1
        assert set(np.diff(path)) <= {0, 1}
        score = float(log_attn[np.arange(t_mel), path].sum())
        assert score == pytest.approx(best_score, abs=1e-9)
    # random continuous scores have a unique optimum: the path itself must match
    assert mas(log_attn).argmax(1).tolist() == best_path


def test_mas_batch_equals_single_and_respects_lengths():
    rng = np.random.default_rng(3)
    text_lens, mel_lens = [5, 3, 7], [20, 9, 31]
    batch = rng.normal(size=(3, 31, 7)).astype(np.float32)
    hard = mas_batch(torch.from_numpy(batch), torch.tensor(text_lens), torch.tensor(mel_lens))
    for b, (t, m) in enumerate(zip(text_lens, mel_lens)):
        np.testing.assert_array_equal(hard[b, :m, :t], mas(batch[b, :m, :t]))
        assert hard[b, m:].sum() == 0 and hard[b, :, t:].sum() == 0
        dur = durations_from_hard(hard[b, :m, :t])
        assert dur.dtype == np.int32 and dur.sum() == m and (dur >= 1).all()


def test_mas_fewer_frames_than_symbols_still_sums():
    hard = mas(np.zeros((3, 5)))
    dur = durations_from_hard(hard)
    assert dur.sum() == 3 and dur[0] >= 1 and dur[-1] >= 1
    hard_b = mas_batch(np.zeros((2, 6, 5), np.float32), [5, 2], [3, 6])
    assert durations_from_hard(hard_b[0, :3, :5]).sum() == 3
    assert durations_from_hard(hard_b[1, :6, :2]).sum() == 6


def test_binarize_keeps_shape_and_device():
    logp = torch.randn(2, 1, 10, 4)
    hard = binarize(logp, torch.tensor([4, 2]), torch.tensor([10, 6]))
    assert hard.shape == logp.shape and hard.dtype == torch.float32
    assert hard[0, 0].sum() == 10 and hard[1, 0].sum() == 6


# ----------------------------------------------------------------------------- prior

def test_prior_shape_rows_normalised_and_diagonal():
    p = beta_binomial_prior(7, 30)
    assert p.shape == (30, 7)
    torch.testing.assert_close(p.sum(1), torch.ones(30))
    assert (p >= 0).all()
    peaks = p.argmax(1)
    assert peaks[0] == 0 and peaks[-1] == 6
    assert (torch.diff(peaks) >= 0).all()  # the mode walks down the diagonal
    # larger scaling = a narrower band around the diagonal
    assert beta_binomial_prior(7, 30, scaling=4.0)[15].max() > p[15].max()


def test_prior_batch_pads_with_zeros():
    pb = prior_batch([3, 5], [10, 8])
    assert pb.shape == (2, 10, 5)
    torch.testing.assert_close(pb[0, :10, :3], beta_binomial_prior(3, 10))
    assert pb[0, :, 3:].sum() == 0 and pb[1, 8:].sum() == 0


# ----------------------------------------------------------------------------- encoder + losses

def test_encoder_matches_nvidia_state_dict_names_and_shapes():
    enc = AlignmentEncoder()
    shapes = {k: tuple(v.shape) for k, v in enc.state_dict().items()}
    assert shapes == NVIDIA_ATTENTION_SHAPES


def test_soft_attention_rows_sum_to_one_over_real_symbols():
    torch.manual_seed(0)
    model = Aligner(10, n_mel_channels=8, n_text_channels=16, n_att_channels=8)
    text = torch.tensor([[1, 2, 3, 4], [5, 6, 0, 0]])
    tl = torch.tensor([4, 2])
    mel = torch.randn(2, 8, 12)
    soft, logp = model(text, tl, mel, prior_batch([4, 2], [12, 12]))
    assert soft.shape == logp.shape == (2, 1, 12, 4)
    torch.testing.assert_close(soft.sum(-1), torch.ones(2, 1, 12))
    assert soft[1, 0, :, 2:].max() < 1e-30
    assert torch.isfinite(logp).all()


def test_no_nan_gradients_with_unequal_text_lengths():
    """-inf masking makes CTC backward produce NaN on CPU; the finite mask must not."""
    torch.manual_seed(0)
    model = Aligner(12, n_mel_channels=8, n_text_channels=16, n_att_channels=8)
    text = torch.tensor([[1, 2, 3, 4, 5, 6], [7, 8, 9, 0, 0, 0], [3, 4, 0, 0, 0, 0]])
    tl, ml = torch.tensor([6, 3, 2]), torch.tensor([20, 14, 9])
    mel = torch.randn(3, 8, 20)
    soft, logp = model(text, tl, mel, prior_batch(tl, ml))
    loss = ForwardSumLoss()(logp, tl, ml) + BinarizationLoss()(binarize(logp, tl, ml), soft)
    loss.backward()
    assert torch.isfinite(loss)
    for name, p in model.named_parameters():
        assert p.grad is None or torch.isfinite(p.grad).all(), name
    assert model.embedding.weight.grad.abs().sum() > 0


def test_forward_sum_loss_prefers_the_right_alignment():
    """A sharp attention on the true monotonic path scores better than one on a wrong path."""
    t_mel, t_text = 12, 4
    true_path = np.repeat(np.arange(t_text), 3)
    wrong_path = np.array([0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 3])

    def logprob(path, other):
        lp = torch.full((1, 1, t_mel, t_text), -8.0)
        lp[0, 0, np.arange(t_mel), path] = -0.01
        return lp

    tl, ml = torch.tensor([t_text]), torch.tensor([t_mel])
    loss = ForwardSumLoss()
    assert loss(logprob(true_path, None), tl, ml) < loss(logprob(wrong_path, None), tl, ml) + 1e-6
    # permuted symbol order (non-monotonic) is much worse than monotonic
    perm = np.array([3, 2, 1, 0])[true_path]
    assert loss(logprob(perm, None), tl, ml) > loss(logprob(true_path, None), tl, ml) + 1.0


def test_binarization_loss_is_zero_for_matching_hard_and_soft():
    hard = torch.zeros(1, 1, 4, 2)
    hard[0, 0, :2, 0] = 1
    hard[0, 0, 2:, 1] = 1
    assert BinarizationLoss()(hard, hard.clone()) == pytest.approx(0.0, abs=1e-6)
    assert BinarizationLoss()(hard, torch.full_like(hard, 0.5)) == pytest.approx(np.log(2), rel=1e-5)


def test_lengths_to_mask():
    assert lengths_to_mask(torch.tensor([2, 0, 3]), 4).tolist() == [
        [True, True, False, False], [False] * 4, [True, True, True, False]]
