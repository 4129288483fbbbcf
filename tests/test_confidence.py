"""The `confidence` value model: the LM's per-step log-probabilities, weighed by a logistic fit."""

from __future__ import annotations

import json

import pytest

from models.confidence import (
    CONFIDENCE_FILE,
    ConfidenceValue,
    _LogProbs,
    fit_confidence_value,
    state_features,
)
from models.metrics import roc_auc

PROMPT = "Question: What is 12 plus 7?\nAnswer:\n"  # two lines, as a word problem's prompt has


def test_features_of_a_hand_made_state():
    # steps' mean log-probs -2 and -0.5, least likely token -3, two steps
    assert state_features([[-1.0, -3.0], [-0.5]]) == [-2.0, -0.5, -2.5, -3.0, 2.0]
    assert state_features([]) == [0.0, 0.0, 0.0, 0.0, 0.0]


def test_step_log_probs_are_the_lms_own(tiny_policy_dir):
    """Per step, one log-prob per token of the step, and together they are log p(steps | prompt) as the
    causal LM computes it over the whole text."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    steps = ["12+7=19\n", "The answer is 19\n"]
    [per_step] = _LogProbs(str(tiny_policy_dir), "cpu", "float32", 8, 256).paths([(PROMPT, steps)])
    tok = AutoTokenizer.from_pretrained(tiny_policy_dir)
    prompt_ids = tok(PROMPT, add_special_tokens=False)["input_ids"]
    step_ids = [tok(s, add_special_tokens=False)["input_ids"] for s in steps]
    assert [len(x) for x in per_step] == [len(x) for x in step_ids]
    ids = torch.tensor([prompt_ids + step_ids[0] + step_ids[1]])
    model = AutoModelForCausalLM.from_pretrained(tiny_policy_dir).eval()
    with torch.inference_mode():
        logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), -1)
    direct = sum(logp[i - 1, ids[0, i]].item() for i in range(len(prompt_ids), ids.shape[1]))
    assert sum(map(sum, per_step)) == pytest.approx(direct, abs=1e-4)


def _rows(good_target: float) -> list[dict]:
    """Paths whose second step is a demonstration-like step or the same step garbled (characters the policy
    never saw in that order): the garbled ones get -good_target."""
    rows = []
    for a in range(3, 60):
        prompt = f"Q: {a} +4 *2\n"
        first = f"{a}+4={a + 4} (left: *2)\n"
        good = f"{a + 4}*2={2 * (a + 4)}\n"
        bad = f"*=(4{a}2{a} left\n"
        rows.append({"segments": [[prompt, None], [first, good_target], [good, good_target]]})
        rows.append({"segments": [[prompt, None], [first, good_target], [bad, -good_target]]})
    return rows


@pytest.mark.parametrize("good_target", [1.0, -1.0])
def test_the_fit_learns_which_way_the_targets_point(tmp_path, tiny_policy_dir, good_target):
    """Trained where the policy's likely steps are worth +1, the model ranks held-out likely steps above
    garbled ones; trained on the reverse targets, it ranks them the other way: the weights come from the
    targets, not from a fixed reading of confidence."""
    history = fit_confidence_value(tiny_policy_dir, _rows(good_target), tmp_path / "v")
    assert history["steps"] > 0 and history["settings"]["states"] > 0
    value = ConfidenceValue(str(tmp_path / "v"))
    states, labels = [], []
    for a in range(70, 90):
        prompt, first = f"Q: {a} +4 *2\n", f"{a}+4={a + 4} (left: *2)\n"
        states += [prompt + first + f"{a + 4}*2={2 * (a + 4)}\n", prompt + first + f"*=(4{a}2{a} left\n"]
        labels += [True, False]
    scores = value.scorer([f"Q: {a} +4 *2\n" for a in range(70, 90)])(states)
    assert all(-1 <= s <= 1 for s in scores)
    auc = roc_auc(scores, labels)
    assert (auc > 0.9) if good_target > 0 else (auc < 0.1)


def test_a_saved_model_reloads_to_the_same_scores_and_the_prompt_is_looked_up(tmp_path, tiny_policy_dir):
    from models.value import TransformersValue, load_value

    fit_confidence_value(tiny_policy_dir, _rows(1.0), tmp_path / "v")
    states = [PROMPT + "12+7=19\n", PROMPT + "12+7=19\nThe answer is 19\n"]
    first = ConfidenceValue(str(tmp_path / "v")).scorer([PROMPT])(states)
    again = load_value(str(tmp_path / "v"))
    assert isinstance(again, ConfidenceValue) and again.scorer([PROMPT])(states) == first
    assert again.scored_tokens > 0 and again.calls == 1
    # read from its features: with the prompt known, "Answer:" is not a step
    paths = again.lm.paths([(PROMPT, ["12+7=19\n"])])
    assert first[0] == pytest.approx(again.value(state_features(paths[0])))
    assert again.score(states[:1]) != pytest.approx(first[:1])  # unknown prompt: "Answer:\n" read as a step
    assert isinstance(load_value(str(tiny_policy_dir)), TransformersValue)  # no weights file: a head model


def test_a_weights_file_from_other_features_is_refused_by_name(tmp_path, tiny_policy_dir):
    fit_confidence_value(tiny_policy_dir, _rows(1.0), tmp_path / "v")
    spec = json.loads((tmp_path / "v" / CONFIDENCE_FILE).read_text())
    spec["features"] = spec["features"][:-1]
    (tmp_path / "v" / CONFIDENCE_FILE).write_text(json.dumps(spec))
    with pytest.raises(ValueError, match=CONFIDENCE_FILE):
        ConfidenceValue(str(tmp_path / "v"))


def test_no_targets_is_an_error_and_leaves_nothing(tmp_path, tiny_policy_dir):
    with pytest.raises(ValueError, match="no value targets"):
        fit_confidence_value(tiny_policy_dir, [], tmp_path / "v")
    assert not (tmp_path / "v").exists()


def test_a_refit_scores_only_the_paths_it_has_not_seen_and_fits_the_same(tmp_path, tiny_policy_dir):
    """The flywheel refits on every tree so far, from the model it fitted before (the same LM, saved again):
    a refit scores only the new paths, and fits what a fit from scratch fits."""
    from models import confidence

    confidence._SCORED.clear()  # earlier tests in this process fitted on these paths with this LM
    rows = _rows(1.0)
    first = fit_confidence_value(tiny_policy_dir, rows[:60], tmp_path / "v1")
    assert first["scored_paths"] == 60
    refit = fit_confidence_value(tmp_path / "v1", rows, tmp_path / "v2")  # the LM saved in v1 is the same LM
    assert refit["scored_paths"] == len(rows) - 60
    confidence._SCORED.clear()  # as in a fresh process
    scratch = fit_confidence_value(tiny_policy_dir, rows, tmp_path / "v3")
    assert scratch["scored_paths"] == len(rows)
    spec = [json.loads((tmp_path / v / CONFIDENCE_FILE).read_text()) for v in ("v2", "v3")]
    assert spec[0]["weights"] == pytest.approx(spec[1]["weights"], abs=1e-6)
    assert spec[0]["states"] == spec[1]["states"]


def test_states_that_begin_a_longer_one_are_read_off_its_forward_pass(tmp_path, tiny_policy_dir):
    fit_confidence_value(tiny_policy_dir, _rows(1.0), tmp_path / "v")
    steps = ["12+7=19\n", "19*2=38\n", "The answer is 38\n"]
    states = [PROMPT + "".join(steps[:d]) for d in (3, 1, 2, 0)] + [PROMPT + "12+7=20\n"]
    together = ConfidenceValue(str(tmp_path / "v"))
    scores = together.scorer([PROMPT])(states)
    alone = ConfidenceValue(str(tmp_path / "v"))
    assert scores == pytest.approx([alone.scorer([PROMPT])([s])[0] for s in states], abs=1e-6)
    full, other = (together.lm.tokens(PROMPT, x) for x in (steps, ["12+7=20\n"]))
    assert together.scored_tokens == full + other  # two forward passes: the longest path, and the other branch
    # a window too short for the longest path: each state is scored on its own, as it fits
    short = ConfidenceValue(str(tmp_path / "v"), max_length=full - 2)
    alone = ConfidenceValue(str(tmp_path / "v"), max_length=full - 2)
    assert short.scorer([PROMPT])(states) == pytest.approx([alone.scorer([PROMPT])([s])[0] for s in states],
                                                          abs=1e-6)
