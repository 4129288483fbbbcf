"""Quality metrics for value / reward models (pure Python)."""

from __future__ import annotations

from collections.abc import Sequence


def roc_auc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """Area under the ROC curve: P(score of a positive > score of a negative), ties count half.

    None when there is no positive or no negative example.
    """
    pairs = sorted(zip(scores, labels, strict=True), key=lambda p: p[0])
    n_pos = sum(1 for _, y in pairs if y)
    n_neg = len(pairs) - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    rank_sum, i = 0.0, 0
    while i < len(pairs):  # average ranks over ties
        j = i
        while j < len(pairs) and pairs[j][0] == pairs[i][0]:
            j += 1
        avg_rank = (i + 1 + j) / 2
        rank_sum += avg_rank * sum(1 for _, y in pairs[i:j] if y)
        i = j
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def sibling_auc(scores: Sequence[float], labels: Sequence[bool], parents: Sequence[str]) -> float | None:
    """AUC between siblings only: over pairs of states with the same parent, one positive and one negative,
    the fraction where the positive scores higher (ties count half). This is the choice a search makes at
    each node; a model can rank all states well (by depth, say) and siblings at chance.

    None when no parent has both a positive and a negative child.
    """
    families: dict[str, list[tuple[float, bool]]] = {}
    for score, label, parent in zip(scores, labels, parents, strict=True):
        families.setdefault(parent, []).append((score, label))
    wins = pairs = 0.0
    for family in families.values():
        good = [s for s, y in family if y]
        bad = [s for s, y in family if not y]
        for g in good:
            for b in bad:
                wins += 1.0 if g > b else 0.5 if g == b else 0.0
        pairs += len(good) * len(bad)
    return wins / pairs if pairs else None


def heldout_value_metrics(score, rows: list[dict], limit: int = 4000) -> dict:
    """A value model's MSE and step-ranking AUC on held-out paths.

    `rows`: `{"prompt", "steps", "targets", "hard"}` per root-to-leaf path; every distinct state (the
    prompt and the first k steps) counts once, up to `limit` states. `score` maps states to values. MSE
    is against the training targets; AUC is of the value predicting that the state leads to a correct
    answer (`hard` > 0), over all states and between siblings (`sibling_auc`).
    """
    states: dict[str, tuple[float, bool, str]] = {}
    for row in rows:
        text = row["prompt"]
        for step, target, hard in zip(row["steps"], row["targets"], row["hard"], strict=True):
            states.setdefault(text + step, (float(target), hard > 0, text))
            text += step
        if len(states) >= limit:
            break
    if not states:
        return {"heldout_states": 0, "heldout_mse": None, "heldout_auc": None, "heldout_sibling_auc": None}
    texts = list(states)[:limit]
    values = score(texts)
    targets, labels, parents = zip(*(states[t] for t in texts), strict=True)
    mse = sum((v - t) ** 2 for v, t in zip(values, targets, strict=True)) / len(texts)
    return {"heldout_states": len(texts), "heldout_mse": mse, "heldout_auc": roc_auc(values, labels),
            "heldout_sibling_auc": sibling_auc(values, labels, parents)}
