"""The offline teacher: a deterministic approximation of an LLM rater, from text statistics alone.

It is *not* a language model and knows nothing about content; it reads surface signals that
correlate with what an LLM teacher rewards on each rubric, and turns them into the same 0-5 additive
scores (see ``criteria.RUBRICS``):

- word shape: the share of tokens that look like words of a language (letters, a vowel, no long
  consonant runs, sane length and case) against random strings, hashes and symbol noise;
- special characters: the share of non-space characters outside letters, digits and plain punctuation;
- fluency: the share of function (stop) words; sentence length; whether sentences start with a
  capital; whether articles are followed by a content word — word salad and shuffled text fail these;
- repetition: duplicated lines and sentences, the coverage of the most frequent word 3-gram, and the
  type/token ratio (keyword stuffing, copy-pasted filler);
- promotional vocabulary: sales, coupon and call-to-action words, prices, percentages, shouting and
  web addresses per word;
- boilerplate: error-page and site-chrome phrases;
- information density: length in words, distinct content words, explanatory phrasing.

Each rubric adds points for signals met, so a document gets the benefit of the doubt the way an
additive rubric does. Deterministic and fast (pure Python, no model), so it is the default teacher
for the embedded corpus; on real data use the ``openai`` teacher.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from climb.quality.criteria import CriteriaError, check_criteria

STOPWORDS = frozenset(
    ["a", "about", "above", "after", "again", "against", "all", "also", "am", "an", "and", "any", "are", "as", "at", "be", "because", "been", "before", "being", "below", "between", "both", "but", "by", "can", "could", "did", "do", "does", "doing", "down", "during", "each", "either", "else", "few", "for", "from", "further", "had", "has", "have", "having", "he", "her", "here", "hers", "herself", "him", "himself", "his", "how", "i", "if", "in", "into", "is", "it", "its", "itself", "just", "may", "me", "might", "more", "most", "must", "my", "myself", "neither", "no", "nor", "not", "now", "of", "off", "on", "once", "only", "or", "other", "ought", "our", "ours", "ourselves", "out", "over", "own", "same", "shall", "she", "should", "so", "some", "such", "than", "that", "the", "their", "theirs", "them", "themselves", "then", "there", "these", "they", "this", "those", "through", "thus", "to", "too", "under", "until", "up", "upon", "us", "very", "was", "we", "were", "what", "when", "where", "whether", "which", "while", "who", "whom", "whose", "why", "will", "with", "within", "without", "would", "yet", "you", "your", "yours", "yourself", "yourselves"]
)
ARTICLES = frozenset({"a", "an", "the"})
# Words that an article is normally followed by only in broken text (function words of other classes).
NOT_AFTER_ARTICLE = STOPWORDS - {"other", "same", "few", "most", "more", "only", "very", "own", "such", "first"}

# Sales and call-to-action words; everyday words that ads also use ("only", "now", "order", "code") are left
# out, since prose uses them too — prices and percentages are counted separately.
PROMO = frozenset(
    ["buy", "sale", "sales", "discount", "discounts", "coupon", "coupons", "deal", "deals", "offer", "offers", "free", "shipping", "shop", "shopping", "save", "saving", "savings", "price", "prices", "cheap", "cheapest", "bargain", "bargains", "promo", "promotion", "exclusive", "hurry", "guaranteed", "bonus", "win", "winner", "casino", "loans", "pills", "viagra", "replica", "followers", "backlinks", "seo", "subscribe", "click", "checkout", "cart", "clearance", "bestseller", "bestsellers", "unbeatable", "lowest"]
)
BOILERPLATE = (
    "not found", "404", "page you are looking for", "cannot be found", "can't be found", "couldn't find",
    "all rights reserved", "accept cookies", "cookie policy", "privacy policy", "sign up", "log in", "login",
    "subscribe to our", "click here", "leave a comment", "share this", "follow us", "read more", "terms of use",
    "javascript", "temporarily unavailable", "no comments", "post a comment", "powered by", "nothing was found",
    "try a search", "homepage", "go back", "sitemap", "typed the address", "check the url", "page not found",
    "error 404", "requested url",
)
EXPLAIN = (
    "because", "therefore", "for example", "for instance", "e.g.", "i.e.", "is defined", "is called", "means",
    "that is", "such as", "in order to", "which", "this is", "used to", "so that", "describes", "explains",
    "returns", "computes", "if ", "when ", "the result", "allows", "depends", "consists", "refers to", "example",
)
_TOKEN = re.compile(r"\S+")
_WORD = re.compile(r"[A-Za-z]+(?:['\u2019][A-Za-z]+)?")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_VOWEL = re.compile(r"[aeiouyAEIOUY]")
_CONSONANT_RUN = re.compile(r"[bcdfghjklmnpqrstvwxzBCDFGHJKLMNPQRSTVWXZ]{5,}")
_PLAIN = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,;:!?'\"()-\u2019\u201c\u201d`/")
_STRIP = "\"'()[]{}<>.,;:!?`*_\u201c\u201d\u2019"


@dataclass(frozen=True)
class Features:
    n_chars: int
    n_tokens: int
    n_words: int
    word_shape: float  # share of tokens shaped like words
    special: float  # share of non-space characters outside letters/digits/plain punctuation
    stop: float  # share of words that are function words
    n_sentences: int
    sentence_words: float  # mean words per sentence
    capital_starts: float  # share of sentences starting with a capital, digit or quote
    article_misfit: float  # share of articles followed by another function word or by nothing word-like
    dup_lines: float  # share of characters in lines/sentences seen before in the document
    top_trigram: float  # share of words covered by the most frequent word 3-gram
    type_token: float  # distinct words / words (on at most the first 200 words)
    promo: float  # promotional words, prices and percentages per word
    shouting: float  # '!' per sentence
    urls: int
    boilerplate: int  # boilerplate phrases found
    content_types: int  # distinct content words (not function words, >= 3 letters)
    explain: int  # explanatory phrases found


def _word_shaped(token: str) -> bool:
    core = token.strip(_STRIP)
    if not core:
        return False
    if core.isdigit():
        return True
    if not core.replace("-", "").replace("'", "").replace("\u2019", "").isalpha():
        return False
    if len(core) > 20 or _CONSONANT_RUN.search(core):
        return False
    if len(core) > 3 and not _VOWEL.search(core):
        return False
    # mixed case inside a word (xQzT) is not how words are written; CamelCase of two parts is allowed
    inner_caps = sum(c.isupper() for c in core[1:])
    return not (inner_caps and not core.isupper() and inner_caps > 1)


def features(text: str) -> Features:
    tokens = _TOKEN.findall(text)
    words = _WORD.findall(text)
    lower = [w.lower() for w in words]
    n_words = len(words)
    nonspace = [c for c in text if not c.isspace()]
    special = sum(c not in _PLAIN for c in nonspace) / max(1, len(nonspace))
    sentences = [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]
    sentence_words = n_words / max(1, len(sentences))
    capital_starts = sum(s[0].isupper() or s[0].isdigit() or s[0] in "\"'`(\u201c" for s in sentences) / max(
        1, len(sentences))
    # articles followed by a function word ("the of", "a the") only happen in broken or shuffled text
    article_total = article_bad = 0
    for i, tok in enumerate(tokens[:-1]):
        if tok.lower() in ARTICLES:
            article_total += 1
            nxt = tokens[i + 1].strip(_STRIP).lower()
            if not nxt or nxt in NOT_AFTER_ARTICLE or not _word_shaped(tokens[i + 1]):
                article_bad += 1
    article_misfit = article_bad / article_total if article_total >= 3 else 0.0
    # duplicated lines or sentences, by characters
    seen: set[str] = set()
    dup_chars = 0
    units = [u.strip().lower() for u in re.split(r"\n+|(?<=[.!?])\s+", text) if len(u.strip()) >= 8]
    for u in units:
        if u in seen:
            dup_chars += len(u)
        seen.add(u)
    dup_lines = dup_chars / max(1, sum(len(u) for u in units))
    trigrams = Counter(zip(lower, lower[1:], lower[2:], strict=False))
    top_trigram = 3 * trigrams.most_common(1)[0][1] / n_words if trigrams and trigrams.most_common(1)[0][1] > 1 else 0.0
    head = lower[:200]
    type_token = len(set(head)) / max(1, len(head))
    promo_hits = sum(w in PROMO for w in lower) + len(re.findall(r"[$\u20ac\u00a3]\s?\d|\d+\s?%", text))
    promo = promo_hits / max(1, n_words)
    shouting = text.count("!") / max(1, len(sentences))
    urls = len(re.findall(r"https?://|www\.|\.(?:com|net|org|biz|info)\b", text))
    low_text = text.lower()
    boilerplate = sum(low_text.count(p) for p in BOILERPLATE)
    content_types = len({w for w in lower if w not in STOPWORDS and len(w) >= 3})
    explain = sum(low_text.count(p) for p in EXPLAIN)
    return Features(
        n_chars=len(text), n_tokens=len(tokens), n_words=n_words,
        word_shape=sum(_word_shaped(t) for t in tokens) / max(1, len(tokens)), special=special,
        stop=sum(w in STOPWORDS for w in lower) / max(1, n_words), n_sentences=len(sentences),
        sentence_words=sentence_words,
        capital_starts=capital_starts, article_misfit=article_misfit, dup_lines=dup_lines, top_trigram=top_trigram,
        type_token=type_token, promo=promo, shouting=shouting, urls=urls, boilerplate=boilerplate,
        content_types=content_types, explain=explain,
    )


def _clip(x: float) -> int:
    return int(min(5, max(0, x)))


def score_features(f: Features) -> dict[str, int]:
    """The four rubric scores (0-5) from the features of one document."""
    real_words = f.word_shape >= 0.8 and f.special < 0.1 and f.n_words >= 5
    sentences = 5 <= f.sentence_words <= 60 and f.stop >= 0.18
    fluent = f.capital_starts >= 0.6 and f.article_misfit < 0.2 and 0.22 <= f.stop <= 0.7
    repetitive = f.dup_lines > 0.25 or f.top_trigram > 0.15 or (f.n_words >= 60 and f.type_token < 0.35)
    boiler_dense = f.boilerplate >= 1 and f.boilerplate * 25 > f.n_words
    # word salad: real words in no grammatical order (sentences start anywhere, articles precede function words)
    salad = (f.capital_starts < 0.3 and f.n_sentences >= 3) or f.article_misfit >= 0.34

    writing = 0
    if real_words:
        writing += 1
        writing += sentences
        writing += not repetitive
        writing += fluent and f.n_words >= 30
        writing += (fluent and f.article_misfit < 0.1 and f.shouting < 0.3 and f.n_words >= 60
                    and 0.28 <= f.stop <= 0.65)
    if repetitive or not fluent:
        writing = min(writing, 2)
    if salad:
        writing = min(writing, 1)

    # absence of advertisement: 5 with no promotional signal, down to 0 for a text made of it
    ad_level = f.promo * 100 + 2 * f.shouting + 1.5 * min(4, f.urls)
    advertisement = 5 - sum(ad_level > t for t in (1.5, 3.5, 6, 9, 13))
    if not real_words and f.n_words < 5:
        advertisement = min(advertisement, 3)

    info = 0
    if real_words and not boiler_dense:
        info += f.n_words >= 20 and f.content_types >= 10
        info += f.n_words >= 40 and f.content_types >= 20
        info += sentences and not repetitive
        info += f.n_words >= 90 and f.content_types >= 40
        info += f.n_words >= 180 and f.content_types >= 70 and f.promo < 0.03
    if repetitive or not fluent:
        info = min(info, 1)
    if salad:
        info = 0

    edu = 0
    if real_words and not boiler_dense and not repetitive:
        edu += f.n_words >= 20 and f.content_types >= 10
        edu += f.explain >= 1 and sentences
        edu += fluent and f.n_words >= 50 and f.promo < 0.03
        edu += f.explain >= 3 and f.n_words >= 80
        edu += f.explain >= 5 and f.n_words >= 150 and writing >= 4
    if not fluent:
        edu = min(edu, 1)
    if salad:
        edu = 0

    return {"writing_quality": _clip(writing), "advertisement": _clip(advertisement),
            "informational_value": _clip(info), "educational_value": _clip(edu)}


class HeuristicTeacher:
    """The offline default teacher (see the module docstring); scores the built-in criteria only."""

    name = "heuristic"

    def __init__(self, criteria: Sequence[str]):
        self.criteria = check_criteria(criteria)
        known = set(score_features(features("")))
        unknown = [c for c in self.criteria if c not in known]
        if unknown:
            raise CriteriaError(
                f"quality.criteria: the heuristic teacher scores only {sorted(known)}, not {unknown}; "
                "use the openai teacher with your own rubrics for other criteria"
            )
        self.counts = {"asked": 0}

    def score(self, text: str) -> dict[str, int]:
        scores = score_features(features(text))
        return {c: scores[c] for c in self.criteria}

    def annotate(self, ids: Sequence[str], texts: Sequence[str]) -> list[dict[str, int] | None]:
        self.counts["asked"] += len(texts)
        return [self.score(t) for t in texts]
