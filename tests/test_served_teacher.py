"""The served teacher (`teacher_server_url`): TRL's VLLMClient.get_sequence_logprobs against a stand-in vLLM server.

The stand-in implements what the client calls — ``GET /health``, ``GET /v1/models`` and ``POST /v1/completions``
with ``prompt`` = token-id lists, ``max_tokens=1``, ``prompt_logprobs=k`` — computing vLLM's answer (per position:
the top-k tokens with rank, plus the token actually there) from a tiny local model. No vLLM needed.
"""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch

from tgpo.teacher import LocalTeacher, ServedTeacher
from tgpo.testing import build_model, build_tokenizer


class StandInVLLM:
    """``vllm serve``'s scoring endpoints, answered by ``model`` (float32, no gradient)."""

    def __init__(self, model):
        self.model = model.eval()
        self.requests = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, code, body):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path == "/health":
                    self._send(200, {})
                elif self.path == "/v1/models":
                    self._send(200, {"data": [{"id": "stand-in-teacher"}]})
                else:
                    self._send(404, {"error": self.path})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append(body)
                if self.path != "/v1/completions":
                    return self._send(404, {"error": self.path})
                choices = [outer.prompt_logprobs(seq, body["prompt_logprobs"], body["temperature"])
                           for seq in body["prompt"]]
                self._send(200, {"choices": [{"index": i, "text": "", "prompt_logprobs": c}
                                             for i, c in enumerate(choices)]})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)

    @torch.no_grad()
    def prompt_logprobs(self, seq, k, temperature):
        logits = self.model(input_ids=torch.tensor([seq])).logits[0].float() / temperature
        logp = torch.log_softmax(logits, -1)
        out = [None]  # vLLM: no log-prob for the first prompt token
        for pos in range(1, len(seq)):
            row = logp[pos - 1]
            top = torch.topk(row, k)
            entry = {str(int(t)): {"logprob": float(v), "rank": r + 1, "decoded_token": ""}
                     for r, (v, t) in enumerate(zip(top.values, top.indices))}
            actual = int(seq[pos])
            if str(actual) not in entry:
                entry[str(actual)] = {"logprob": float(row[actual]), "rank": int((row > row[actual]).sum()) + 1,
                                      "decoded_token": ""}
            out.append(entry)
        return out

    def __enter__(self):
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        host, port = self.server.server_address
        self.base_url = f"http://{host}:{port}"
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def _batch(tok, B=5, P=6, T=7, seed=0, pad_prompts=False):
    g = torch.Generator().manual_seed(seed)
    prompt_ids = torch.randint(4, len(tok), (B, P), generator=g)
    prompt_mask = torch.ones(B, P, dtype=torch.long)
    if pad_prompts:
        prompt_mask[0, :2] = 0
        prompt_ids[0, :2] = tok.pad_token_id
    completion_ids = torch.randint(4, len(tok), (B, T), generator=g)
    completion_mask = torch.ones(B, T, dtype=torch.long)
    completion_mask[1, 4:] = 0
    completion_mask[2, 1:] = 0
    completion_mask[3, :] = 0  # an empty completion
    completion_ids[completion_mask == 0] = tok.pad_token_id
    return prompt_ids, prompt_mask, completion_ids, completion_mask


@pytest.mark.parametrize("top_k", [1, 3])
def test_served_teacher_matches_local_teacher(top_k):
    tok = build_tokenizer()
    model = build_model(tok, hidden=48, seed=3).eval()
    batch = _batch(tok)
    mask = batch[3].bool()
    local = LocalTeacher(model, student_vocab_size=len(tok)).score(*batch)
    with StandInVLLM(model) as server:
        served_teacher = ServedTeacher(server.base_url, len(tok), top_logprobs=top_k, timeout=5)
        served = served_teacher.score(*batch)
        body = server.requests[-1]
    assert body["max_tokens"] == 1 and body["prompt_logprobs"] == top_k and body["temperature"] == 1.0
    assert len(body["prompt"]) == 5 and len(body["prompt"][3]) == 6 and len(body["prompt"][1]) == 6 + 4
    assert torch.equal(served[0][mask], local[0][mask])
    torch.testing.assert_close(served[1][mask], local[1][mask], rtol=0, atol=1e-5)
    assert (served[1][~mask] == 0).all()
    assert served_teacher.unrestricted_positions == 0


def test_served_teacher_strips_left_padding_and_chunks():
    """Prompts are sent unpadded; the answers equal the local teacher run on each unpadded row alone."""
    tok = build_tokenizer()
    model = build_model(tok, hidden=32, seed=5).eval()
    batch = _batch(tok, pad_prompts=True)
    with StandInVLLM(model) as server:
        served = ServedTeacher(server.base_url, len(tok), chunk_size=2, timeout=5).score(*batch)
        assert len(server.requests) == 3  # 5 rows in chunks of 2
        sent = sorted(len(p) for r in server.requests for p in r["prompt"])  # chunks arrive concurrently
        assert sent == [6, 6 + 1, 6 + 4, 4 + 7, 6 + 7]  # row 0: its two pad tokens dropped
    p_ids, p_mask, c_ids, c_mask = batch
    row0 = LocalTeacher(model, len(tok)).score(p_ids[:1, 2:], p_mask[:1, 2:], c_ids[:1], c_mask[:1])
    assert torch.equal(served[0][0], row0[0][0])
    torch.testing.assert_close(served[1][0], row0[1][0], rtol=0, atol=1e-5)


def test_served_argmax_restricted_to_student_ids():
    tok = build_tokenizer()
    model = build_model(tok, hidden=32, seed=4, vocab_size=len(tok) + 20).eval()
    with torch.no_grad():  # the ids the student cannot emit become the teacher's favourites
        model.get_output_embeddings().weight[len(tok):] *= 0
        model.get_output_embeddings().weight[len(tok):] += 5.0
    batch = _batch(tok)
    mask = batch[3].bool()
    local = LocalTeacher(model, student_vocab_size=len(tok)).score(*batch)
    with StandInVLLM(model) as server:
        top1 = ServedTeacher(server.base_url, len(tok), top_logprobs=1, timeout=5)
        argmax1, _ = top1.score(*batch)
        outside = int((argmax1[mask] >= len(tok)).sum())  # top-1 only: kept, and counted
        assert outside > 0 and top1.unrestricted_positions == outside
        wide = ServedTeacher(server.base_url, len(tok), top_logprobs=25, timeout=5)
        argmax, logp = wide.score(*batch)
    assert (argmax < len(tok)).all() and wide.unrestricted_positions == 0
    assert torch.equal(argmax[mask], local[0][mask])
    torch.testing.assert_close(logp[mask], local[1][mask], rtol=0, atol=1e-5)


def test_tgpo_trainer_with_served_teacher(tiny_pair, tmp_path):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM

    from tgpo import TGPOConfig, TGPOTrainer

    rows = Dataset.from_list([{"prompt": [{"role": "user", "content": f"{i}+{i}"}], "answer": str(2 * i)}
                              for i in range(4)])
    teacher = AutoModelForCausalLM.from_pretrained(tiny_pair[1])

    def parity(completions, **kw):
        return [float(len(c[0]["content"]) % 2) for c in completions]

    with StandInVLLM(teacher) as server:
        args = TGPOConfig(output_dir=str(tmp_path / "o"), method="tgpo", use_cpu=True, bf16=False,
                          activation_checkpointing=False, per_device_train_batch_size=8, num_generations=4,
                          max_completion_length=6, max_steps=1, logging_steps=1, report_to="none",
                          save_strategy="no", teacher_server_url=server.base_url, teacher_server_timeout=5)
        trainer = TGPOTrainer(str(tiny_pair[0]), reward_funcs=[parity], args=args, train_dataset=rows,
                              teacher_model=str(tiny_pair[1]))
        assert isinstance(trainer.teacher, ServedTeacher)
        trainer.train()
        assert server.requests, "the teacher pass went through the server"
    logs = trainer.state.log_history[0]
    assert logs["guidance_weight"] == pytest.approx(2e-3) and "teacher/sampled_logp" in logs
    assert logs["teacher/unrestricted_positions"] == trainer.teacher.unrestricted_positions == 0
    assert trainer.teacher.temperature == args.temperature  # lp_T at the rollout temperature by default
