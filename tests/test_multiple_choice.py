"""Multiple-choice scoring: the task format's errors, batched scores against a per-example
computation with the model's logits, and accuracy on tasks whose answers are known."""

import json
import os

import jax
import numpy as np
import pytest
from flax import nnx

from llmjp_jax.model import Llama, LlamaConfig
from llmjp_jax.train import multiple_choice as mc
from llmjp_jax.train.multiple_choice import Question, TaskError, accuracies, encode_task, load_task

from .conftest import ROOT

SAMPLE_TASK = os.path.join(ROOT, "tests", "data", "mc_sample.jsonl")
CFG = LlamaConfig(vocab_size=64, num_layers=2, hidden=32, ffn=64, num_heads=4, num_kv_heads=2,
                  dtype="float32", remat="none", attention="xla")


class _IdTokenizer:
    """Text "5 9 13" is the token ids 5, 9, 13: choices can be made token by token."""

    bos_id = 1

    class sp:  # noqa: N801 (the SentencePiece processor's interface)
        @staticmethod
        def encode(texts):
            return [[int(x) for x in t.split()] for t in texts]

        @staticmethod
        def unk_id():
            return 0


@pytest.fixture(scope="module")
def model():
    """The tiny model as a function of token ids (jitted: eager calls of each shape are slow)."""
    graphdef, params = nnx.split(Llama(CFG, nnx.Rngs(3)))
    forward = jax.jit(lambda p, ids_BxT: nnx.merge(graphdef, p)(ids_BxT))
    logits = lambda ids_BxT: np.asarray(forward(params, ids_BxT))  # noqa: E731
    logits.graphdef, logits.params = graphdef, params
    return logits


def _per_example_loglik(model, context, choice) -> float:
    """Sum of log p(choice token | everything before it), from one unpadded row's logits."""
    ids = np.asarray([[*context, *choice]], np.int32)
    logp_TxV = np.asarray(jax.nn.log_softmax(model(ids)[0]), np.float64)
    return sum(logp_TxV[len(context) - 1 + i, token] for i, token in enumerate(choice))


def _task(rng, questions=5):
    out = []
    for _ in range(questions):
        context = " ".join(map(str, rng.integers(3, 64, rng.choice([2, 6]))))
        choices = [" ".join(map(str, rng.integers(3, 64, rng.integers(1, 4))))
                   for _ in range(rng.integers(2, 5))]
        out.append(Question(context, tuple(choices), int(rng.integers(len(choices)))))
    return out


def test_batched_scores_equal_a_per_example_computation(model):
    questions = _task(np.random.default_rng(0))
    task = encode_task(questions, _IdTokenizer)
    graphdef, params = model.graphdef, model.params
    # 3 rows per call: several calls, the last one padded, rows of different lengths padded right
    sum_N, count_N = mc.row_loglik(mc.make_scorer(graphdef), params, task, rows=3)
    expected, lengths = [], []
    for q in questions:
        for choice in _IdTokenizer.sp.encode(list(q.choices)):
            context = [1, *_IdTokenizer.sp.encode([q.question])[0]]
            expected.append(_per_example_loglik(model, context, choice))
            lengths.append(len(choice))
    np.testing.assert_allclose(sum_N, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(count_N, lengths)
    by_hand = {"acc_norm": 0, "acc": 0}
    row = 0
    for q in questions:
        n = len(q.choices)
        mean, total = np.array(expected[row:row + n]) / lengths[row:row + n], expected[row:row + n]
        by_hand["acc_norm"] += int(np.argmax(mean) == q.answer)
        by_hand["acc"] += int(np.argmax(total) == q.answer)
        row += n
    assert accuracies(task, sum_N, count_N) == {k: v / len(questions) for k, v in by_hand.items()}


def _greedy(model, context, length):
    """The model's most likely continuation, one token at a time (no cache: plain logits)."""
    ids = list(context)
    for _ in range(length):
        ids.append(int(np.argmax(model(np.asarray([ids], np.int32))[0, -1, :CFG.vocab_size])))
    return ids[len(context):]


def _least_likely(model, context, length):
    ids = list(context)
    for _ in range(length):
        logits = np.asarray(model(np.asarray([ids], np.int32))[0, -1, 3:CFG.vocab_size])
        ids.append(int(np.argmin(logits)) + 3)
    return ids[len(context):]


def test_accuracy_is_one_when_the_gold_choice_is_the_models_own_continuation(model):
    """Gold: the greedy continuation; distractors: the least likely tokens, and the gold's first
    tokens with its last token swapped for the least likely one. Putting gold last or first
    changes nothing; making a distractor gold gives 0."""
    graphdef, params = model.graphdef, model.params
    score, rng = mc.make_scorer(graphdef), np.random.default_rng(1)
    questions, wrong = [], []
    for i in range(6):
        context = [int(x) for x in rng.integers(3, 64, 4)]
        gold = _greedy(model, [1, *context], 3)
        bad = _least_likely(model, [1, *context], 3)
        near = gold[:2] + _least_likely(model, [1, *context, *gold[:2]], 1)
        choices = [" ".join(map(str, c)) for c in (bad, near, gold)]
        order = [2, 0, 1] if i % 2 else [0, 1, 2]
        choices = [choices[j] for j in order]
        text = " ".join(map(str, context))
        questions.append(Question(text, tuple(choices), order.index(2)))
        wrong.append(Question(text, tuple(choices), order.index(0)))
    for task, expected in ((questions, 1.0), (wrong, 0.0)):
        encoded = encode_task(task, _IdTokenizer)
        acc = accuracies(encoded, *mc.row_loglik(score, params, encoded, rows=4))
        assert acc == {"acc_norm": expected, "acc": expected}


def test_the_sample_task_loads_in_both_languages():
    questions = load_task(SAMPLE_TASK)
    assert len(questions) == 8 and all(0 <= q.answer < len(q.choices) for q in questions)
    assert any("村" in q.question for q in questions) and any("sky" in "".join(q.choices) for q in questions)


@pytest.mark.parametrize("line, says", [
    ('{"question": "q", "choices": ["a", "b"], "answer": 2}', '"answer"=2 must be an index'),
    ('{"question": "q", "choices": ["a", "b"], "answer": true}', '"answer"=True must be an index'),
    ('{"question": "q", "choices": ["a"], "answer": 0}', '"choices" must be a list of at least 2'),
    ('{"question": 3, "choices": ["a", "b"], "answer": 0}', '"question" must be a string'),
    ('{"question": "q", "choices": ["a", "b"], "answer": 0', "not JSON"),
    ('["q", ["a", "b"], 0]', "expected an object"),
])
def test_a_bad_line_is_named_by_file_and_line(tmp_path, line, says):
    path = tmp_path / "task.jsonl"
    good = json.dumps({"question": "質問", "choices": ["はい", "いいえ"], "answer": 0}, ensure_ascii=False)
    path.write_text(f"{good}\n\n{line}\n", encoding="utf-8")
    with pytest.raises(TaskError, match=rf"{path}:3: ") as e:
        load_task(str(path))
    assert says in str(e.value)


def test_an_empty_or_missing_task_file_is_a_user_error(tmp_path):
    from llmjp_jax.errors import MissingFileError

    (tmp_path / "empty.jsonl").write_text("\n", encoding="utf-8")
    with pytest.raises(TaskError, match="holds no questions"):
        load_task(str(tmp_path / "empty.jsonl"))
    with pytest.raises(MissingFileError, match="no such task file"):
        load_task(str(tmp_path / "none.jsonl"))
