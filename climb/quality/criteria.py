"""The quality criteria: names, additive 0-5 rubrics (the teacher prompt) and validation of scores.

The default list is the paper's four. ``advertisement`` is scored as the *absence* of advertising
(5 = no promotional content at all), so that for every criterion higher is better and one rule
("a cluster mean below its threshold is pruned") fits all of them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

MIN_SCORE, MAX_SCORE = 0, 5

DEFAULT_CRITERIA = ("writing_quality", "advertisement", "informational_value", "educational_value")

RUBRICS: dict[str, str] = {
    "writing_quality": (
        "Writing quality (0-5, additive). Start at 0 and add a point for each that holds: "
        "+1 the text consists of real words of a human language rather than noise, markup or random strings; "
        "+1 it is made of complete, grammatical sentences; "
        "+1 spelling and punctuation are essentially correct and nothing is pointlessly repeated; "
        "+1 the sentences connect into coherent, well-organised paragraphs; "
        "+1 the prose is clear, precise and fluent, like carefully edited published writing."
    ),
    "advertisement": (
        "Absence of advertisement (0-5, additive; HIGH means NO advertising). Start at 0 and add a point for each "
        "that holds: +1 the text is not wholly a sales pitch, coupon, price list or call to buy/click/subscribe; "
        "+1 promotional phrases (discounts, 'buy now', 'free shipping', 'limited offer') are at most incidental; "
        "+1 no products, services or links are pushed at the reader; "
        "+1 the content exists to inform or discuss, not to drive traffic or keywords; "
        "+1 there is no promotional content, affiliate language or search-engine keyword stuffing at all."
    ),
    "informational_value": (
        "Informational value (0-5, additive). Start at 0 and add a point for each that holds: "
        "+1 the text states at least one concrete fact, definition or piece of content (not an error page, "
        "navigation, boilerplate or filler); "
        "+1 it contains several specific, non-trivial pieces of information; "
        "+1 the information is accurate-looking, self-contained and usable without the surrounding page; "
        "+1 it is dense: most sentences add new information; "
        "+1 it is a substantial, reference-quality treatment of its subject."
    ),
    "educational_value": (
        "Educational value (0-5, additive). Start at 0 and add a point for each that holds: "
        "+1 a learner could take away anything at all from the text; "
        "+1 it explains or describes a concept, method or topic rather than merely mentioning it; "
        "+1 it is coherent and suitable as study material, e.g. documentation, a tutorial or a textbook passage; "
        "+1 it explains why or how, with examples or reasoning a student could follow; "
        "+1 it is outstanding teaching material, thorough and clear, at a school-to-university level."
    ),
}


class CriteriaError(ValueError):
    """A criterion or a score does not fit the configured rubric."""


def rubric(criterion: str, extra: Mapping[str, str] | None = None) -> str:
    """The rubric text of a criterion: from ``extra`` (config) first, else the built-in ones."""
    if extra and criterion in extra:
        return extra[criterion]
    if criterion in RUBRICS:
        return RUBRICS[criterion]
    raise CriteriaError(
        f"quality.criteria: no rubric for {criterion!r}; built-in rubrics: {sorted(RUBRICS)} "
        "(give your own under quality.teacher.rubrics)"
    )


def check_criteria(criteria: Sequence[str]) -> list[str]:
    """Non-empty, unique, identifier-like names (they become column names ``mean_<criterion>``)."""
    criteria = list(criteria)
    if not criteria:
        raise CriteriaError("quality.criteria is empty")
    dup = sorted({c for c in criteria if criteria.count(c) > 1})
    if dup:
        raise CriteriaError(f"quality.criteria: duplicate name(s) {dup}")
    bad = [c for c in criteria if not c.isidentifier()]
    if bad:
        raise CriteriaError(f"quality.criteria: {bad} are not valid names (letters, digits, underscores)")
    return criteria


def check_score(value: object, criterion: str) -> int:
    """An integer score in 0..5 (an integral float such as 3.0 is accepted); anything else raises."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CriteriaError(f"{criterion}: score {value!r} is not a number")
    if isinstance(value, float) and not value.is_integer():
        raise CriteriaError(f"{criterion}: score {value!r} is not an integer")
    score = int(value)
    if not MIN_SCORE <= score <= MAX_SCORE:
        raise CriteriaError(f"{criterion}: score {score} is outside {MIN_SCORE}..{MAX_SCORE}")
    return score
