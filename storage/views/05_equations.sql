-- A calculator's check of the arithmetic a solution writes, reading neither the question nor the gold answer:
-- equations_hold(text) is false when some binary equation in it (`a op b = c`, op one of + - * /, numbers
-- with optional decimals and a leading $) does not hold; c is compared at its own precision (10/3 = 3.33
-- holds, 10/3 = 3.4 does not). A run of arithmetic that is not binary (2 * 3 + 4 = 10, -5 + 3 = -2) is not
-- checked. On the testbed a right answer is often reached through a wrong step, most often a slip of
-- computation (docs/testbed.md, "A calculator's check"): WHERE equations_hold(completion) on sft_traces keeps
-- the traces whose every written computation is right. problems.steps.equations_hold is the same check in
-- Python (tests hold the two to the same verdicts).
CREATE OR REPLACE MACRO equation_result(a, op, b) AS
    CASE op WHEN '+' THEN a + b WHEN '-' THEN a - b WHEN '*' THEN a * b
            WHEN '/' THEN a / nullif(b, 0) END;
CREATE OR REPLACE MACRO equations_hold(t) AS coalesce(list_bool_and(list_transform(
    list_transform(regexp_extract_all(t, '[0-9.+\-*/$ \t]+=[ \t]*\$?-?[0-9]+(?:\.[0-9]+)?', 0),
                   lambda run: regexp_extract(replace(run, '$', ''),
                       '^[^0-9+\-*/]*?([0-9]+(?:\.[0-9]+)?)[ \t]*([-+*/])[ \t]*([0-9]+(?:\.[0-9]+)?)[ \t]*=[ \t]*(-?[0-9]+(?:\.[0-9]+)?)$',
                       ['a', 'op', 'b', 'c'])),
    lambda e: e.op = '' OR coalesce(abs(equation_result(TRY_CAST(e.a AS DOUBLE), e.op, TRY_CAST(e.b AS DOUBLE))
                                                - TRY_CAST(e.c AS DOUBLE))
                                    < 0.5 * 10 ** -length(split_part(e.c, '.', 2)), false))), true);
