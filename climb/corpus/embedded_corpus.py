"""The embedded default corpus: real documentation text from this Python installation, plus planted junk.

Natural documents are docstrings of the standard library and of installed packages, read from source with
``ast`` (nothing is imported), grouped into topics by the module they come from. Planted documents imitate the
low-quality kinds CLIMB's clusters revealed in web crawls. Every document carries an ``origin`` label
(``natural/<topic>`` or ``planted/<kind>``) that only tests and the report read.

Deterministic: the same installed packages, settings and seed give the same bytes.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import logging
import multiprocessing
import random
import re
import string
import sysconfig
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from climb.core.io import write_json, write_jsonl

log = logging.getLogger(__name__)

# topic -> modules or packages whose docstrings make its documents. Standard library first, then packages.
TOPICS: dict[str, list[str]] = {
    "numerics": ["math", "cmath", "decimal", "fractions", "numbers", "numpy.linalg", "numpy.fft", "numpy.polynomial",
                 "numpy._core", "numpy.lib", "scipy.linalg", "scipy.optimize", "scipy.integrate", "scipy.interpolate",
                 "scipy.sparse", "scipy.signal", "scipy.special"],
    "statistics": ["statistics", "random", "scipy.stats", "numpy.random", "sklearn.metrics", "sklearn.covariance",
                   "sklearn.mixture"],
    "ml": ["sklearn.linear_model", "sklearn.ensemble", "sklearn.svm", "sklearn.tree", "sklearn.neighbors",
           "sklearn.cluster", "sklearn.decomposition", "sklearn.model_selection", "sklearn.preprocessing",
           "sklearn.neural_network", "torch.nn", "torch.optim", "lightgbm", "sentence_transformers"],
    "text": ["re", "string", "textwrap", "difflib", "codecs", "unicodedata", "locale", "gettext", "shlex",
             "nltk.tokenize", "nltk.stem", "nltk.metrics", "nltk.tag", "nltk.parse", "nltk.corpus.reader",
             "nltk.translate", "sacrebleu"],
    "web": ["http", "urllib", "email", "html", "xml", "json", "smtplib", "ftplib", "wsgiref", "mailbox",
            "urllib3", "requests", "aiohttp"],
    "os": ["os", "shutil", "subprocess", "pathlib", "tempfile", "glob", "fnmatch", "signal", "multiprocessing",
           "threading", "concurrent", "asyncio", "io", "stat", "filecmp", "tarfile", "zipfile", "psutil", "platform",
           "selectors", "sched", "queue", "pty", "tty", "sysconfig", "venv", "importlib", "pkgutil", "site",
           "socketserver", "getpass", "shelve", "logging", "sqlite3", "dbm", "zipimport", "pip._internal.utils"],
    "dataframes": ["pandas.core", "pandas.io", "pandas.plotting", "pyarrow", "datasets"],
}

PLANTED_KINDS = ("coupon_ads", "keyword_spam", "repeated_sentences", "special_char_noise", "page_not_found",
                 "non_human_strings")


@dataclass(frozen=True)
class Document:
    id: str
    text: str
    origin: str


# --------------------------------------------------------------------------------------------- natural text


def _module_files(module: str) -> list[Path]:
    """Source files of a module or package, sorted; [] when it is not installed."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        # A stdlib module can be shadowed in odd environments; fall back to the stdlib folder.
        stdlib = Path(sysconfig.get_paths()["stdlib"])
        candidate = stdlib / (module.replace(".", "/") + ".py")
        package = stdlib / module.replace(".", "/")
        if candidate.is_file():
            return [candidate]
        if package.is_dir():
            return sorted(package.rglob("*.py"))
        return []
    if spec.submodule_search_locations:
        files: list[Path] = []
        for location in spec.submodule_search_locations:
            files.extend(p for p in Path(location).rglob("*.py") if "tests" not in p.parts and "test" not in p.parts)
        return sorted(set(files))
    if spec.origin and spec.origin.endswith(".py"):
        return [Path(spec.origin)]
    return []


_DEFINITION = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
_HOLDS_STATEMENTS = ast.stmt | ast.excepthandler | ast.match_case  # a definition sits only in their bodies


def _definitions(tree: ast.Module) -> Iterator[ast.AST]:
    """The functions and classes of a module in ``ast.walk``'s order (breadth first), without walking expressions:
    they hold no definition, and walking them was most of the corpus build's time."""
    queue = deque([tree])
    while queue:
        node = queue.popleft()
        for field in node._fields:
            value = getattr(node, field, None)
            if isinstance(value, list):
                queue.extend(child for child in value if isinstance(child, _HOLDS_STATEMENTS))
        if isinstance(node, _DEFINITION):
            yield node


def _docstrings(path: Path) -> Iterator[str]:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8", errors="strict"))
    except (SyntaxError, UnicodeDecodeError, ValueError):
        return
    for node in [tree, *_definitions(tree)]:
        doc = ast.get_docstring(node, clean=True)
        if doc:
            yield doc


_RST_NOISE = re.compile(r"^\s*(\.\. |:[a-z]+:|-{3,}|={3,}|~{3,}|\*{3,})")


def _prose(doc: str, min_chars: int, max_chars: int) -> str | None:
    """Keep the prose paragraphs of a docstring (no doctests, tables or markup lines); cut at a paragraph."""
    paragraphs = []
    for para in re.split(r"\n\s*\n", doc):
        lines = [ln for ln in para.splitlines() if ln.strip()]
        if not lines:
            continue
        if sum(ln.lstrip().startswith((">>>", "...")) for ln in lines) > 0 or any(_RST_NOISE.match(ln) for ln in lines):
            continue
        text = " ".join(ln.strip() for ln in lines)
        letters = sum(map(str.isalpha, text)) + sum(map(str.isspace, text))  # no character is both
        if letters / len(text) < 0.85 or len(text.split()) < 6:
            continue
        paragraphs.append(text)
    out = ""
    for para in paragraphs:
        candidate = f"{out}\n\n{para}" if out else para
        if len(candidate) > max_chars:
            break
        out = candidate
    return out if len(out) >= min_chars else None


def _passages(path: Path, min_chars: int, max_chars: int) -> list[str]:
    """The prose passages of one source file's docstrings, in order."""
    return [text for doc in _docstrings(path) if (text := _prose(doc, min_chars, max_chars))]


def natural_documents(min_chars: int, max_chars: int, processes: int = 1) -> dict[str, list[str]]:
    """topic -> distinct prose passages, in a stable order (module, file, position). ``processes`` > 1 parses the
    source files in that many processes (parsing is most of the time); the passages and their order are the same."""
    files = {topic: [path for module in modules for path in _module_files(module)] for topic, modules in TOPICS.items()}
    every_file = [path for paths in files.values() for path in paths]
    if processes > 1:
        # forked: a spawned process would re-run the job's script (its __main__); this job runs no thread pools
        with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("fork")) as pool:
            parsed = iter(pool.map(partial(_passages, min_chars=min_chars, max_chars=max_chars), every_file,
                                   chunksize=16))
    else:
        parsed = (_passages(path, min_chars, max_chars) for path in every_file)
    seen: set[str] = set()
    by_topic: dict[str, list[str]] = {}
    for topic, paths in files.items():
        texts: list[str] = []
        for _ in paths:
            for text in next(parsed):
                if text not in seen:
                    seen.add(text)
                    texts.append(text)
        by_topic[topic] = texts
        log.info("topic %s: %d passages from %d modules", topic, len(texts), len(TOPICS[topic]))
    return by_topic


# --------------------------------------------------------------------------------------------- planted text

_PRODUCTS = ["sneakers", "headphones", "laptops", "vitamins", "sunglasses", "phone cases", "mattresses", "watches",
             "handbags", "coffee makers", "gaming chairs", "skin cream", "protein powder", "car insurance"]
_SPAM_WORDS = ["cheap", "best", "buy", "online", "free", "discount", "casino", "loans", "pills", "deal", "cheap flights",
               "viagra", "crypto", "bonus", "win", "download", "hot", "sale", "replica", "seo", "backlinks", "followers"]
_FILLER = ["Thank you for visiting our website.", "Click here to read more.", "All rights reserved.",
           "Subscribe to our newsletter for updates.", "This post was updated recently.", "Leave a comment below.",
           "Share this page with your friends.", "Follow us on social media.", "Sign up now to continue reading.",
           "Please accept cookies to continue."]
_NOT_FOUND = ["404 Not Found", "Error 404: Page not found", "Oops! That page can't be found.", "Page Not Found",
              "The requested URL was not found on this server.", "Sorry, we couldn't find that page."]
_NOT_FOUND_BODY = ["The page you are looking for might have been removed, had its name changed, or is temporarily "
                   "unavailable.", "Please check the URL for typos or return to the homepage.",
                   "It looks like nothing was found at this location. Maybe try a search?",
                   "If you typed the address, make sure it is spelled correctly.",
                   "Home | Sitemap | Contact | Privacy Policy", "Go back to the previous page or visit our homepage."]


def _coupon_ad(rng: random.Random) -> str:
    parts = []
    for _ in range(rng.randint(4, 8)):
        product = rng.choice(_PRODUCTS)
        pct = rng.choice([10, 15, 20, 25, 30, 40, 50, 60, 70])
        code = "".join(rng.choices(string.ascii_uppercase, k=4)) + str(pct)
        parts.append(rng.choice([
            f"Save {pct}% on all {product} today only!",
            f"Use coupon code {code} at checkout for {pct}% off {product}.",
            f"FREE shipping on {product} orders over ${rng.randint(2, 9)}9!",
            f"Limited time offer: buy one {product.rstrip('s')} get one free.",
            f"Hurry, the {product} sale ends at midnight. Shop now!",
            f"Best prices on {product} guaranteed. Order now at www.{rng.choice(['deals', 'shop', 'bargain'])}"
            f"{rng.randint(10, 99)}.com",
        ]))
    return " ".join(parts)


def _keyword_spam(rng: random.Random) -> str:
    return " ".join(rng.choice(_SPAM_WORDS) for _ in range(rng.randint(40, 120)))


def _repeated_sentences(rng: random.Random) -> str:
    sentence = rng.choice(_FILLER)
    return " ".join([sentence] * rng.randint(6, 20))


def _special_char_noise(rng: random.Random) -> str:
    symbols = "#@!$%^&*~|<>{}[]\\/=+_-;:?" + "§¶•¤©®°±"
    chunks = []
    for _ in range(rng.randint(30, 80)):
        if rng.random() < 0.2:
            chunks.append("".join(rng.choices(string.ascii_letters, k=rng.randint(1, 4))))
        else:
            chunks.append("".join(rng.choices(symbols, k=rng.randint(2, 9))))
    return " ".join(chunks)


def _page_not_found(rng: random.Random) -> str:
    body = rng.sample(_NOT_FOUND_BODY, k=rng.randint(2, 4))
    return "\n".join([rng.choice(_NOT_FOUND), *body])


def _non_human_string(rng: random.Random) -> str:
    pieces = []
    for _ in range(rng.randint(8, 30)):
        kind = rng.randrange(4)
        if kind == 0:
            pieces.append(f"{rng.getrandbits(128):032x}")
        elif kind == 1:
            pieces.append("".join(rng.choices(string.ascii_letters + string.digits + "+/", k=rng.randint(20, 60))) + "==")
        elif kind == 2:
            pieces.append("-".join(f"{rng.getrandbits(4 * n):0{n}x}" for n in (8, 4, 4, 4, 12)))
        else:
            pieces.append("0x" + "".join(rng.choices("0123456789abcdef", k=rng.randint(8, 16))))
    return " ".join(pieces)


_PLANTERS = {
    "coupon_ads": _coupon_ad,
    "keyword_spam": _keyword_spam,
    "repeated_sentences": _repeated_sentences,
    "special_char_noise": _special_char_noise,
    "page_not_found": _page_not_found,
    "non_human_strings": _non_human_string,
}


def planted_documents(kind: str, n: int, rng: random.Random) -> list[str]:
    """``n`` distinct planted documents of one kind."""
    texts: list[str] = []
    seen: set[str] = set()
    attempts = 0
    while len(texts) < n:
        attempts += 1
        if attempts > 100 * (n + 1):
            raise RuntimeError(f"could not make {n} distinct {kind} documents")
        text = _PLANTERS[kind](rng)
        if text not in seen:
            seen.add(text)
            texts.append(text)
    return texts


# --------------------------------------------------------------------------------------------- the corpus


def _doc_id(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def build_corpus(docs_per_topic: int, heldout_per_topic: int, planted_per_kind: int, min_chars: int,
                 max_chars: int, seed: int, processes: int = 1) -> tuple[list[Document], list[Document]]:
    """The corpus documents (shuffled) and the held-out natural documents (for evaluation tasks)."""
    rng = random.Random(seed)
    corpus: list[Document] = []
    heldout: list[Document] = []
    for topic, texts in natural_documents(min_chars, max_chars, processes).items():
        texts = list(texts)
        random.Random(f"{seed}/{topic}").shuffle(texts)
        held, kept = texts[:heldout_per_topic], texts[heldout_per_topic:heldout_per_topic + docs_per_topic]
        if len(kept) < docs_per_topic:
            log.warning("topic %s: only %d documents available (%d asked)", topic, len(kept), docs_per_topic)
        heldout.extend(Document(_doc_id(t), t, f"natural/{topic}") for t in held)
        corpus.extend(Document(_doc_id(t), t, f"natural/{topic}") for t in kept)
    for kind in PLANTED_KINDS:
        corpus.extend(Document(_doc_id(t), t, f"planted/{kind}")
                      for t in planted_documents(kind, planted_per_kind, random.Random(f"{seed}/{kind}")))
    rng.shuffle(corpus)
    return corpus, heldout


def write_embedded_corpus(shard_paths: list[str], heldout_path: str, manifest_path: str, docs_per_topic: int,
                          heldout_per_topic: int, planted_per_kind: int, min_chars: int, max_chars: int,
                          seed: int, processes: int = 1) -> None:
    """Build the embedded default corpus and write it as JSONL shards (round-robin), held-out set and manifest;
    ``processes`` parse the source files (the same bytes whatever their number)."""
    corpus, heldout = build_corpus(docs_per_topic, heldout_per_topic, planted_per_kind, min_chars, max_chars, seed,
                                   processes)
    n = len(shard_paths)
    for i, path in enumerate(shard_paths):
        write_jsonl(path, [{"id": d.id, "text": d.text, "origin": d.origin} for d in corpus[i::n]])
    write_jsonl(heldout_path, [{"id": d.id, "text": d.text, "topic": d.origin.split("/", 1)[1]} for d in heldout])
    origins: dict[str, int] = {}
    for d in corpus:
        origins[d.origin] = origins.get(d.origin, 0) + 1
    write_json(manifest_path, {
        "documents": len(corpus),
        "heldout": len(heldout),
        "by_origin": dict(sorted(origins.items())),
        "shards": {Path(p).name: len(corpus[i::n]) for i, p in enumerate(shard_paths)},
        "topics": {t: mods for t, mods in TOPICS.items()},
        "seed": seed,
    })
    log.info("embedded corpus: %d documents in %d shards, %d held out", len(corpus), n, len(heldout))
