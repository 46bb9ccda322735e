"""Memory of the teacher pass and of a training step, measured with torch's CPU allocator (bench/probes.py).

The formula that ``tgpo train --dry-run`` prints (:func:`tgpo.teacher.teacher_pass_peak_bytes`) is checked against
measured peaks, and a TGPO, RKL and KDRL step is checked never to allocate a batch x completion x vocabulary tensor.
A large vocabulary (Qwen's 152,064) with a tiny hidden size makes the logits dominate, as they do at scale.
"""

import pytest
import torch

from bench.probes import track_allocations
from tgpo.teacher import decoder_layer_width, teacher_pass_peak_bytes, teacher_scores
from tgpo.testing import build_model, build_tokenizer

V_LARGE = 152064


def _inputs(tok, rows, P, T, padded):
    g = torch.Generator().manual_seed(0)
    prompt_mask = torch.ones(rows, P, dtype=torch.long)
    if padded:
        prompt_mask[0, :3] = 0
    return (torch.randint(4, len(tok), (rows, P), generator=g), prompt_mask,
            torch.randint(4, len(tok), (rows, T), generator=g), torch.ones(rows, T, dtype=torch.long))


@pytest.mark.parametrize(
    "hidden,V,rows,T,chunk_tokens,padded",
    [
        (64, V_LARGE, 1, 1024, 128, True),  # head tile dominates
        (64, V_LARGE, 2, 1024, 256, False),
        (64, V_LARGE, 1, 256, None, True),  # row chunks only: the whole row's logits
        (64, 1000, 2, 2048, 256, True),  # body and its SDPA masks dominate
        (128, 1000, 1, 2048, 256, False),  # body activations only
    ],
)
def test_formula_matches_measured_teacher_pass_peak(hidden, V, rows, T, chunk_tokens, padded):
    tok = build_tokenizer()
    P = 16
    model = build_model(tok, hidden=hidden, layers=2, vocab_size=V, max_positions=P + T).eval()
    batch = _inputs(tok, rows, P, T, padded)
    teacher_scores(model, *(x[:, :4] for x in batch), len(tok), None, 2)  # first-call allocations out of the way
    with track_allocations() as measured:
        teacher_scores(model, *batch, len(tok), None, chunk_tokens)
    predicted = teacher_pass_peak_bytes(rows, T, V, hidden, chunk_tokens, prompt_len=P, dtype_bytes=4,
                                        layer_width=decoder_layer_width(model.config.to_dict()), padded=padded)
    # An estimate for planning: within -20% (it over-counts a little) .. +5% of the measured peak.
    assert 0.8 <= measured.peak_bytes / predicted <= 1.05, (measured.peak_bytes, predicted)


def test_formula_layer_width_matches_a_mixture_of_experts_layer():
    # Qwen3-30B-A3B's shape ratios (query 2H, kv H/4, 128 experts, top 8) at hidden 128, one layer, no head.
    from transformers import Qwen3MoeConfig, Qwen3MoeForCausalLM

    cfg = Qwen3MoeConfig(vocab_size=300, hidden_size=128, num_hidden_layers=1, num_attention_heads=32, head_dim=8,
                         num_key_value_heads=4, num_experts=128, num_experts_per_tok=8, moe_intermediate_size=48,
                         max_position_embeddings=1024)
    torch.manual_seed(0)
    model = Qwen3MoeForCausalLM(cfg).eval()
    ids = torch.randint(0, 300, (1, 1024))
    with torch.no_grad(), track_allocations() as measured:
        model.model(input_ids=ids, use_cache=False)
    predicted = 1024 * decoder_layer_width(cfg.to_dict()) * 4
    assert 0.85 <= measured.peak_bytes / predicted <= 1.05, (measured.peak_bytes, predicted)


def test_probe_sees_full_logits_when_they_are_made():
    # The probe below can fail: without position chunks one row chunk's logits are rows x T x V.
    tok = build_tokenizer()
    B, T = 8, 32
    model = build_model(tok, hidden=16, vocab_size=V_LARGE).eval()
    batch = _inputs(tok, B, 8, T, padded=False)
    with track_allocations() as whole:
        teacher_scores(model, *batch, len(tok), None, None)
    with track_allocations() as chunked:
        teacher_scores(model, *batch, len(tok), 2, 32)
    assert whole.largest_bytes >= B * T * V_LARGE * 4
    assert chunked.largest_bytes <= 32 * V_LARGE * 4 == B * T * V_LARGE * 4 / 8  # one [32, V] tile


@pytest.mark.slow
@pytest.mark.parametrize("method", ["tgpo", "tgpo_adv", "rkl", "kdrl"])
def test_training_step_never_allocates_batch_logits(method, tmp_path):
    from datasets import Dataset

    from tgpo import TGPOConfig, TGPOTrainer

    tok = build_tokenizer(chat_template=False)
    student = build_model(tok, hidden=32, seed=0, vocab_size=V_LARGE)
    teacher = build_model(tok, hidden=32, seed=1, vocab_size=V_LARGE)
    B, G, T = 8, 4, 32
    data = Dataset.from_list([{"prompt": f"{i}+{i}=", "answer": str(2 * i)} for i in range(8)])
    args = TGPOConfig(output_dir=str(tmp_path), method=method, use_cpu=True, bf16=False,
                      activation_checkpointing=False, per_device_train_batch_size=B, num_generations=G,
                      max_completion_length=T, max_steps=1, report_to="none", save_strategy="no", logging_steps=1,
                      teacher_chunk_size=2, teacher_chunk_tokens=32, guidance_weight=0.1, disable_tqdm=True)
    trainer = TGPOTrainer(student, reward_funcs=[lambda completions, **kw: [float(len(c) % 2) for c in completions]],
                          args=args, train_dataset=data, processing_class=tok, teacher_model=teacher,
                          teacher_processing_class=tok)
    calls = []
    score = trainer.teacher.score
    trainer.teacher.score = lambda *a: calls.append(a[2].shape) or score(*a)
    with track_allocations() as step:
        trainer.train()
    assert calls and calls[0] == (B, T)  # the teacher pass ran, on full-length completions
    # The largest buffers are TRL's fused-head tile ([positions, 32768] on CPU), the embedding's gradient and Adam
    # state ([V, 32]) and the teacher's tile ([32, V]): all well under one batch x completion x vocabulary tensor.
    assert step.largest_bytes < B * T * V_LARGE * 4 / 2, step.largest_bytes
