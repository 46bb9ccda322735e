"""``tgpo align``: the authors' alignment of a teacher to a student that share one BPE id space (docs/method.md §2).

The paper's cross-family pair (Qwen2.5-Math student, Qwen3 teacher) shares token ids but not special tokens or
embedding sizes. The authors resized both embedding matrices to the larger vocabulary and set both tokenizers'
special tokens to the student's. :func:`align_teacher_to_student` does that and writes both models; it adds the
student's tokens that the teacher's tokenizer lacks at the same ids, and refuses (with the first mismatching ids)
when the two id spaces really differ — no alignment can fix that.
"""

from __future__ import annotations

from pathlib import Path

from .teacher import VocabularyMismatchError, check_vocabularies, load_teacher

__all__ = ["align_teacher_to_student", "add_arguments", "run"]

_SPECIAL = ("bos_token", "eos_token", "pad_token", "unk_token")


def _set_generation_ids(model, tokenizer) -> None:
    for cfg in (model.config, model.generation_config):
        for name in ("bos_token_id", "eos_token_id", "pad_token_id"):
            setattr(cfg, name, getattr(tokenizer, name))


def align_teacher_to_student(teacher, student, output_dir, *, trust_remote_code: bool = False) -> dict[str, Path]:
    """Write ``output_dir/teacher`` and ``output_dir/student``, aligned as the authors did.

    Both embedding matrices are resized to the larger of the two vocabularies (new rows come from transformers'
    mean-initialisation); the teacher's tokenizer gets the student's special tokens (and any trailing student
    tokens it lacks, at the same ids), and both models' config/generation ids follow the student's tokenizer.

    Args:
        teacher, student: model folders.
    Returns: ``{"teacher": path, "student": path}``.
    Raises: :class:`~tgpo.teacher.VocabularyMismatchError` if the shared ids map to different tokens.
    """
    t_model, t_tok = load_teacher(teacher, trust_remote_code=trust_remote_code)
    s_model, s_tok = load_teacher(student, trust_remote_code=trust_remote_code)
    n_student, n_teacher = len(s_tok), len(t_tok)

    # The student's tokens past the end of the teacher's tokenizer join it at the same ids.
    extra = s_tok.convert_ids_to_tokens(list(range(n_teacher, n_student)))
    specials = set(s_tok.all_special_tokens)
    for token in extra:
        t_tok.add_tokens([token], special_tokens=token in specials)
    for name in _SPECIAL:
        value = getattr(s_tok, name)
        setattr(t_tok, name, value)
    if s_tok.chat_template:
        t_tok.chat_template = s_tok.chat_template

    size = max(t_model.get_input_embeddings().weight.shape[0], s_model.get_input_embeddings().weight.shape[0], n_student)
    for model in (t_model, s_model):
        if model.get_input_embeddings().weight.shape[0] != size:
            model.resize_token_embeddings(size)
    check_vocabularies(s_tok, t_tok, t_model.get_input_embeddings().weight.shape[0])
    _set_generation_ids(t_model, s_tok)
    _set_generation_ids(s_model, s_tok)

    out = Path(output_dir)
    paths = {"teacher": out / "teacher", "student": out / "student"}
    for key, model, tok in (("teacher", t_model, t_tok), ("student", s_model, s_tok)):
        model.save_pretrained(paths[key])
        tok.save_pretrained(paths[key])
    return paths


def add_arguments(parser) -> None:
    parser.add_argument("--teacher", required=True, help="teacher model: a folder or a Hub id (local HF cache when offline)")
    parser.add_argument("--student", required=True, help="student model: a folder or a Hub id (local HF cache when offline)")
    from tgpo.cli import output_folder

    parser.add_argument("--output-dir", required=True, type=output_folder,
                        help="writes OUTPUT_DIR/teacher and OUTPUT_DIR/student")
    parser.add_argument("--trust-remote-code", action="store_true", help="allow custom model code (off by default)")


def run(args) -> int:
    import sys

    try:
        paths = align_teacher_to_student(args.teacher, args.student, args.output_dir, trust_remote_code=args.trust_remote_code)
    except (FileNotFoundError, VocabularyMismatchError) as err:
        print(f"tgpo align: error: {err}", file=sys.stderr)
        return 2
    print(f"aligned teacher: {paths['teacher']}\naligned student: {paths['student']}")
    return 0
