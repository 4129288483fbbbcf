import json
import random

import pytest

from problems import DatasetError, arithmetic, gsm8k, load_problems, select_problems
from problems.steps import final_answer, is_final


def test_gsm8k_official_files_load():
    train, test = load_problems("gsm8k", "train"), load_problems("gsm8k", "test")
    assert (len(train), len(test)) == (7473, 1319)
    first = test[0]
    assert first.answer == "18" and first.check("18") and first.check("$18.00") and not first.check("17")
    assert first.prompt.startswith("Question: Janet")


def test_gsm8k_answers_compare_numerically():
    problem = load_problems("gsm8k", "test", n=1)[0]
    assert problem.canonical("1,000") == problem.canonical("1000.0") == "1000"
    assert not problem.check("eighteen")


def _write(tmp_path, rows):
    path = tmp_path / "test.jsonl"
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


@pytest.mark.parametrize("rows,pattern", [
    ([{"question": "q", "answer": "x #### 3"}, {"question": "q", "answer": "so #### three"}],
     r"test\.jsonl:2: field 'answer': gold answer 'three'"),
    ([{"question": "q", "answer": "no marker 3"}], r"test\.jsonl:1: field 'answer' has no '####'"),
    ([{"answer": "#### 3"}], r"test\.jsonl:1: field 'question' is missing"),
    (["{not json"], r"test\.jsonl:1: not valid JSON"),
])
def test_gsm8k_malformed_rows_are_named(tmp_path, rows, pattern):
    _write(tmp_path, rows)
    with pytest.raises(DatasetError, match=pattern):
        gsm8k.load("test", source=str(tmp_path))


def test_gsm8k_rationale_becomes_steps():
    problem = load_problems("gsm8k", "test", n=1)[0]
    raw = json.loads((gsm8k.DEFAULT_DIR / "test.jsonl").read_text().splitlines()[0])["answer"]
    steps = gsm8k.solution_steps(problem, raw)
    assert "<<" not in "".join(steps)
    assert final_answer(steps[-1]) == "18" and all(s.endswith("\n") for s in steps)


def test_arithmetic_is_seeded_and_exact():
    a = arithmetic.generate(50, split="test")
    assert a == arithmetic.generate(50, split="test")
    assert a != arithmetic.generate(50, split="train")
    for p in a:
        steps = arithmetic.solution_steps(p)
        assert p.check(final_answer(steps[-1]))
        assert len(steps) == 4 and all(not is_final(s) for s in steps[:-1])
        values = [int(s.split("=")[1].split()[0]) for s in steps[:-1]]
        assert all(0 <= v <= 99 for v in values)


def test_arithmetic_noise_makes_wrong_demonstrations():
    problems = arithmetic.generate(200, split="demo")
    rng = random.Random(0)
    wrong = sum(not p.check(final_answer(arithmetic.solution_steps(p, rng=rng, error_rate=0.3)[-1]))
                for p in problems)
    assert 30 <= wrong <= 90  # about 30 % (an error can occasionally cancel out)


def test_select_problems_wraps_fixed_datasets_and_extends_generators():
    assert [p.id for p in select_problems("game24", "test", 361, 2)] == ["game24-1362", "game24-1001"]
    tail = select_problems("arithmetic", "train", 10, 5)
    assert tail == arithmetic.generate(15, split="train")[10:]


def test_on_track_is_true_exactly_until_the_first_wrong_step():
    import random

    from problems.arithmetic import generate, on_track, solution_steps

    rng = random.Random(0)
    for p in generate(40, split="test"):
        gold = solution_steps(p)
        assert all(on_track(p, gold[:d]) for d in range(len(gold) + 1))
        noisy = solution_steps(p, rng=rng, error_rate=1.0)
        first_wrong = next(i for i, (a, b) in enumerate(zip(noisy, gold, strict=True)) if a != b)
        assert [on_track(p, noisy[:d]) for d in range(1, len(noisy) + 1)] == [
            d <= first_wrong for d in range(1, len(noisy) + 1)]
        assert not on_track(p, [*gold, "7+1=8\n"])


def test_steps_right_tells_a_right_answer_reached_through_a_wrong_step():
    from problems.arithmetic import apply, generate, parse_ops, solution_steps

    p = generate(1, split="test")[0]
    gold = solution_steps(p)
    start, ops = parse_ops(p.question)
    first = apply(ops[0][0], start, ops[0][1])
    lucky = [gold[0].replace(f"={first} ", f"={first + 1} ", 1), *gold[1:]]  # a slip the later steps ignore
    assert lucky[0] != gold[0] and p.check(final_answer(lucky[-1]))
    assert p.steps_right(gold) is True and p.steps_right(lucky) is False
    assert load_problems("gsm8k", "test", n=1)[0].steps_right(["Janet has 16 eggs.\n"]) is None
    countdown = load_problems("countdown", "test", n=1)[0]
    assert countdown.steps_right([]) is True and countdown.steps_right(["1 + 1 = 3 (left: 3)\n"]) is False


EQUATION_CASES = [
    ("37+12=49 (left: *3 -20)\n49*3=147\n", True),
    ("37+12=49\n49*3=148\n", False),  # the second line's slip
    ("She sold 48/2 = 24 clips.", True),
    ("10/3=3.33 and 10/3=3.3", True),  # compared at the written precision
    ("10/3=3.4", False),
    ("7/2=3", False),
    ("5/0=1", False),
    ("$20 - $5 = $15", True),
    ("$20 - $5 = $14", False),
    ("a=5, 5+3=9", False),
    ("clips. 5+3=9", False),
    ("1+1=2 2+2=5", False),
    ("5-7=-2", True),
    ("2 * 3 + 4 = 11", True),  # not binary: not checked
    ("-5+3=-8", True),  # neither
    ("no arithmetic here", True),
]


@pytest.mark.parametrize("text,holds", EQUATION_CASES)
def test_equations_hold_checks_the_written_arithmetic(text, holds):
    from problems.steps import equations_hold

    assert equations_hold(text) is holds


def test_the_calculator_flags_exactly_the_slipped_demonstrations_in_python_and_in_the_store(tmp_path):
    """The noisy demonstrations' wrong step is a slip of computation, so the check (which reads no gold) and
    the task's rule (which does) agree on every one; the store's SQL macro gives the Python function's verdicts."""
    from problems.steps import equations_hold
    from storage import store

    rng = random.Random(0)
    texts = []
    for p in arithmetic.generate(300, split="demo"):
        steps = arithmetic.solution_steps(p, rng=rng, error_rate=0.3)
        texts.append("".join(steps))
        assert equations_hold(texts[-1]) is p.steps_right(steps)
    assert 40 < sum(not equations_hold(t) for t in texts) < 140
    texts += [text for text, _ in EQUATION_CASES]
    with store.connect(tmp_path / "s.duckdb") as con:
        in_sql = [con.execute("SELECT equations_hold(?)", [t]).fetchone()[0] for t in texts]
    assert in_sql == [equations_hold(t) for t in texts]
