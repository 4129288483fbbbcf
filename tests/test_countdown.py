import pytest

from problems import countdown, load_problems, select_problems
from problems.countdown import CountdownConfig, demonstrations, fault, generate, on_track, reachable, solved
from problems.steps import final_answer


def test_splits_are_seeded_and_disjoint_streams():
    a, b = generate(50, split="test"), generate(50, split="test")
    assert a == b
    assert [p.prompt for p in generate(50, split="train")] != [p.prompt for p in a]
    assert generate(50, split="test", config=CountdownConfig(seed=1)) != a
    assert load_problems("countdown", "test", n=50) == a
    assert select_problems("countdown", "test", 10, 5) == a[10:15]


def test_every_demonstration_is_a_solution_and_stays_on_track():
    problems = generate(300, split="demo")
    rows = demonstrations(300)
    assert [p for p, _ in solved(300, split="demo")] == problems
    for p, row in zip(problems, rows, strict=True):
        assert row["prompt"] == p.prompt
        steps = row["completion"].splitlines(keepends=True)
        assert len(steps) == 4 and all(s.endswith("\n") for s in steps)
        assert p.check(final_answer(steps[-1]))
        assert all(on_track(p, steps[:d]) for d in range(len(steps) + 1))
        assert 10 <= int(p.answer) <= 99 and all(1 <= int(x) <= 9 for x in p.question.split())


@pytest.mark.parametrize("answer,ok", [
    ("((6 + 3) * 4) + 9 = 45", True),
    ("9 + 4 * (6 + 3)", True),           # any expression that uses the numbers and makes the target
    ("(6 + 3) * 4 + 9 + 0 = 45", False),  # a number the puzzle lacks
    ("(6 + 3) * 4 = 36", False),         # leaves a number out, misses the target
    ("(6 + 3) * 4 - 9 = 45", False),     # the numbers, but not the target
    ("45", False),
    ("", False),
])
def test_checker(answer, ok):
    problem = countdown.Problem(id="x", task="countdown", question="3 4 6 9", answer="45", prompt="")
    assert countdown.check(problem, answer) is ok


def test_reachable_and_on_track():
    assert reachable((3, 4, 6, 9), 45) and reachable((9,), 9) and not reachable((1, 1), 5)
    assert reachable((2, 3), 6) and not reachable((2, 3), 7)
    problem = countdown.Problem(id="x", task="countdown", question="3 4 6 9", answer="45", prompt="")
    good = ["6 + 3 = 9 (left: 4 9 9)\n", "9 * 4 = 36 (left: 9 36)\n"]
    assert on_track(problem, good) and on_track(problem, ["3 + 6 = 9 (left: 4 9 9)\n"])  # + commutes
    assert fault(problem, ["6 + 3 = 8 (left: 4 8 9)\n"]) == "miscomputed"
    assert fault(problem, ["6 + 6 = 12 (left: 3 4 9 12)\n"]) == "miscomputed"  # uses a number twice
    assert fault(problem, ["3 - 6 = 3 (left: 3 4 9)\n"]) == "miscomputed"  # smaller minus larger
    assert fault(problem, ["9 * 6 = 54 (left: 3 4 54)\n"]) == "dead end"  # legal, but 3 4 54 cannot make 45
    assert fault(problem, ["six plus three\n"]) == "malformed"
    assert on_track(problem, [*good, "36 + 9 = 45 (left: 45)\n", "The answer is ((6 + 3) * 4) + 9 = 45\n"])
    assert fault(problem, [*good, "36 + 9 = 45 (left: 45)\n", "The answer is 45\n"]) == "wrong answer"


def test_a_countdown_recipe_bootstraps_a_tiny_policy_on_countdown(tmp_path):
    from transformers import AutoConfig, AutoTokenizer

    from models.tiny import TinyRecipe, bootstrap, demonstrations
    from models.training import SFTSettings

    recipe = TinyRecipe(n_positions=160, n_demos=256, error_rate=0.0, countdown=CountdownConfig(),
                        sft=SFTSettings(epochs=1, max_steps=4, learning_rate=3e-3, batch_size=32, max_length=160))
    rows = demonstrations(recipe)
    assert recipe.task_name == "countdown" and rows == countdown.demonstrations(256)
    path = bootstrap(recipe, tmp_path)
    assert path.parent.name == f"tiny-{recipe.digest()}" != f"tiny-{TinyRecipe().digest()}"
    assert AutoConfig.from_pretrained(path).n_positions == 160
    tokenizer = AutoTokenizer.from_pretrained(path)
    text = rows[0]["prompt"] + rows[0]["completion"]
    assert tokenizer.decode(tokenizer(text)["input_ids"]) == text and tokenizer.unk_token_id not in \
        tokenizer(text)["input_ids"]
    assert max(len(tokenizer(r["prompt"] + r["completion"])["input_ids"]) for r in rows) < 160


def test_recipes_without_countdown_keep_their_cache_names():
    """A field added to the recipe must not rename (and so silently retrain) the policies cached before it."""
    from models.tiny import TinyRecipe

    assert TinyRecipe().digest() == "7742a9663c79"  # the demo recipe's cache name since recipe version 2
    with pytest.raises(ValueError, match="error_rate"):
        TinyRecipe(countdown=CountdownConfig())  # the default 20 % noise is arithmetic's
