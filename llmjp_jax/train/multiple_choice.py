"""Multiple-choice evaluation from local JSONL tasks, scored by the model's log-likelihood.

A task file holds one question per line: {"question": str, "choices": [str, ...], "answer": int}
(the gold choice's index, from 0). Each choice is scored by the log-likelihood of its tokens given
`<s>` + the question's tokens (the choice is tokenized on its own, as lm-evaluation-harness does):
`acc_norm` takes the choice with the highest mean log-likelihood per token (length-normalised),
`acc` the highest sum. Rows are padded on the right; under the causal mask padding after a
choice changes nothing before it, so every row of a batch is scored exactly.
"""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from llmjp_jax.errors import MissingFileError, UserError
from llmjp_jax.train.loss import token_losses

LENGTH_MULTIPLE = 32  # rows are padded to a multiple of this, so a task compiles once


class TaskError(UserError):
    """A task file line that is not a valid question; the message names file:line."""


@dataclasses.dataclass(frozen=True)
class Question:
    question: str
    choices: tuple[str, ...]
    answer: int


def load_task(path: str, setting: str = "--task") -> list[Question]:
    """The questions of a JSONL task file; a bad line raises TaskError naming path:line."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.readlines()
    except FileNotFoundError:
        raise MissingFileError(f"{setting}={path}: no such task file.") from None
    questions = [_question(line, f"{path}:{number}") for number, line in enumerate(lines, 1)
                 if line.strip()]
    if not questions:
        raise TaskError(f"{setting}={path} holds no questions (one JSON object a line).")
    return questions


def _question(line: str, where: str) -> Question:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as e:
        raise TaskError(f"{where}: not JSON ({e.msg}).") from None
    if not isinstance(row, dict):
        raise TaskError(f"{where}: expected an object with question, choices and answer.")
    question, choices, answer = row.get("question"), row.get("choices"), row.get("answer")
    if not isinstance(question, str):
        raise TaskError(f"{where}: \"question\" must be a string.")
    if not (isinstance(choices, list) and len(choices) >= 2
            and all(isinstance(c, str) and c for c in choices)):
        raise TaskError(f"{where}: \"choices\" must be a list of at least 2 non-empty strings.")
    if isinstance(answer, bool) or not isinstance(answer, int) or not 0 <= answer < len(choices):
        raise TaskError(f"{where}: \"answer\"={answer!r} must be an index into the "
                        f"{len(choices)} choices (0..{len(choices) - 1}).")
    return Question(question, tuple(choices), answer)


@dataclasses.dataclass(frozen=True)
class EncodedTask:
    """Every (question, choice) pair as a row: tokens [N, L] and which are choice tokens [N, L]."""

    tokens_NxL: np.ndarray
    choice_NxL: np.ndarray
    question_of_N: np.ndarray  # the question each row belongs to
    answers: np.ndarray  # [Q] gold indices


def encode_task(questions: list[Question], tokenizer) -> EncodedTask:
    """Rows of `<s> question choice`, right-padded with 0 to a multiple of LENGTH_MULTIPLE + 1."""
    contexts = tokenizer.sp.encode([q.question for q in questions])
    pairs, owners = [], []
    for index, (q, context) in enumerate(zip(questions, contexts)):
        for choice in tokenizer.sp.encode(list(q.choices)):
            pairs.append(([tokenizer.bos_id, *context], choice or [tokenizer.sp.unk_id()]))
            owners.append(index)
    longest = max(len(c) + len(x) for c, x in pairs)
    length = -(-(longest - 1) // LENGTH_MULTIPLE) * LENGTH_MULTIPLE + 1  # inputs: a multiple
    tokens, choice = np.zeros((len(pairs), length), np.int32), np.zeros((len(pairs), length), bool)
    for row, (context, ids) in enumerate(pairs):
        tokens[row, :len(context) + len(ids)] = [*context, *ids]
        choice[row, len(context):len(context) + len(ids)] = True
    return EncodedTask(tokens, choice, np.asarray(owners), np.asarray([q.answer for q in questions]))


def make_scorer(graphdef, out_sharding=None):
    """score(params, tokens_BxL, choice_BxL) -> (sum, count) of each row's choice-token log-likelihoods.

    `out_sharding`: where the results go (several processes: replicated, so each can read them).
    """

    def score(params, tokens_BxL, choice_BxL):
        logits_BxTxV = nnx.merge(graphdef, params)(tokens_BxL[:, :-1])
        ce_BxT, _ = token_losses(logits_BxTxV, tokens_BxL[:, 1:])
        counted_BxT = choice_BxL[:, 1:]
        return (jnp.sum(jnp.where(counted_BxT, -ce_BxT, 0.0), axis=1),
                jnp.sum(counted_BxT, axis=1, dtype=jnp.float32))

    return jax.jit(score, out_shardings=out_sharding)


def row_loglik(score, params, task: EncodedTask, rows: int, place=lambda x: x):
    """(sum, count) of every row's choice log-likelihood, `rows` rows per call (the last padded).

    `place` puts a host batch where the parameters are (training: replicated over the mesh).
    """
    n = len(task.tokens_NxL)
    padded = -(-n // rows) * rows
    tokens = np.zeros((padded, task.tokens_NxL.shape[1]), np.int32)
    choice = np.zeros(tokens.shape, bool)
    tokens[:n], choice[:n] = task.tokens_NxL, task.choice_NxL
    sums, counts = [], []
    for start in range(0, padded, rows):
        s_B, c_B = score(params, place(tokens[start:start + rows]), place(choice[start:start + rows]))
        sums.append(np.asarray(jax.device_get(s_B), np.float64))
        counts.append(np.asarray(jax.device_get(c_B), np.float64))
    return np.concatenate(sums)[:n], np.concatenate(counts)[:n]


def accuracies(task: EncodedTask, sum_N: np.ndarray, count_N: np.ndarray) -> dict[str, float]:
    """acc_norm (argmax of the mean log-likelihood per token) and acc (of the sum), over the questions."""
    right = {"acc_norm": 0, "acc": 0}
    for q, answer in enumerate(task.answers):
        rows = task.question_of_N == q
        right["acc_norm"] += int(np.argmax(sum_N[rows] / count_N[rows]) == answer)
        right["acc"] += int(np.argmax(sum_N[rows]) == answer)
    return {k: v / len(task.answers) for k, v in right.items()}


def evaluate_task(score, params, task: EncodedTask, rows: int = 16, place=lambda x: x) -> dict:
    """The task's accuracies with `params` (score: `make_scorer`)."""
    return accuracies(task, *row_loglik(score, params, task, rows, place))
