"""The key facts of a text (numbers, dates, proper names), for checks that any teacher passes or
fails the same way.

A generated knowledge answer is only as good as its facts: a judge model can pass "drones perform
the waggle dance" because it reads well. The extractive check does not read, it compares: every
number, date and proper name of an answer must occur in the chunk it was generated from, after
normalisation. The same facts size a chunk's share of the generation (`count_facts`) and score
closed-book answers (the facts of a reference found in a reply).

  key_facts(text)                  the normalised facts of `text`, in order of first occurrence
  unsupported_facts(answer, src)   the facts of `answer` that `src` does not hold
  count_facts(text)                how many facts `text` holds

Normal forms (so that the same fact written two ways compares equal):

  numbers  digits only, no thousands separators, no trailing decimal zeros, units and currency
           signs dropped, scale words applied: "1,200 km" "1200" "$1.2 thousand" -> "1200";
           "3.50" -> "3.5"; "5th" -> "5"; "1990s" -> "1990"; number words two..ninety-nine
           ("twenty-five" -> "25"); "one"/"a" only before a scale word ("a million" -> "1000000")
  dates    ISO forms: "2 March 1899" "March 2, 1899" "1899-03-02" -> "1899-03-02";
           "March 1899" -> "1899-03"; "2 March" -> "--03-02"
  names    capitalised words (with inner "of", "de", "van", ...), case-folded, accents and a
           possessive "'s" dropped: "the University of Oslo's" -> "university of oslo"; a
           sentence's first word counts when it is no common function word ("The", "In", ...) and
           the text also writes it capitalised mid-sentence, or the text is a short answer of at
           most three words ("Dunmere.", "Brisk, in 1868.")

Support is lenient where a stricter rule would drop faithful answers: a number is supported when
the source holds it anywhere (also inside a date), a date when the source holds a date that agrees
on every part the answer gives ("1899-03" is supported by "2 March 1899"), a name when each of its
words occurs in the source as a word in any case (or that word without a plural "s").

Pure Python, no labtax imports: the generation side and the evaluation side both use it.
"""

from __future__ import annotations

import re
import unicodedata
from decimal import Decimal, InvalidOperation

__all__ = ["count_facts", "key_facts", "unsupported_facts"]

_MONTHS: dict[str, int] = {
    "january": 1, "jan": 1, "february": 2, "feb": 2, "march": 3, "mar": 3, "april": 4, "apr": 4,
    "may": 5, "june": 6, "jun": 6, "july": 7, "jul": 7, "august": 8, "aug": 8, "september": 9,
    "sept": 9, "sep": 9, "october": 10, "oct": 10, "november": 11, "nov": 11, "december": 12, "dec": 12,
}
# Full names, then abbreviations (a dot allowed only after an abbreviation, so "March. 2" is no date).
_MONTH = (r"(?:January|February|March|April|May|June|July|August|September|October|November|December"
          r"|(?:Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept|Sep|Oct|Nov|Dec)\.?)")
_DAY = r"(?:[12]\d|3[01]|0?[1-9])(?:st|nd|rd|th)?"
_YEAR = r"(?:\d{3,4})"
_SP = r"[ \t\u00a0]+"  # dates never span a line break
_DATE = re.compile(
    rf"(?<![\w-])(?:"
    rf"(?P<iso>\d{{4}})-(?P<isom>0[1-9]|1[0-2])-(?P<isod>0[1-9]|[12]\d|3[01])"
    rf"|(?P<d1>{_DAY}){_SP}(?:of{_SP})?(?P<m1>{_MONTH})(?:,?{_SP}(?P<y1>{_YEAR}))?"
    rf"|(?P<m2>{_MONTH}){_SP}(?P<d2>{_DAY})(?!\d)(?:,?{_SP}(?P<y2>{_YEAR}))?"
    rf"|(?P<m3>{_MONTH}),?{_SP}(?P<y3>{_YEAR})"
    rf")(?![\w-])",
    re.IGNORECASE,
)

_SCALES: dict[str, int] = {
    "hundred": 100, "thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000,
    "trillion": 1_000_000_000_000,
}
_UNITS_WORDS: dict[str, int] = {
    "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}
_TENS_WORDS: dict[str, int] = {
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
    "ninety": 90,
}
_ONE_WORDS = {"one": 1, "a": 1, "an": 1}  # a number only before a scale word: "one" alone is too common
_DIGITS = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+"
_WORD_NUM = (rf"(?:(?:{'|'.join(_TENS_WORDS)})(?:[- ](?:{'|'.join(_UNITS_WORDS)}|one))?"
             rf"|{'|'.join(_UNITS_WORDS)})")
_SCALE = rf"(?:{'|'.join(_SCALES)})"
_NUMBER = re.compile(
    rf"(?<![\w.,])(?:(?P<digits>{_DIGITS})(?P<suffix>st|nd|rd|th|s)?(?:[ \t\u00a0]?(?P<dscale>{_SCALE}|[kKmMbB]n?)(?![\w]))?"
    rf"|(?P<word>{_WORD_NUM}|one|an?(?=[ \t]+{_SCALE}))(?:[ \t]+(?P<wscale>{_SCALE}))?)"
    rf"(?!\w*\d)",
    re.IGNORECASE,
)
_LIST_NUMBER = re.compile(r"\d{1,2}[.)][ \t]")
_SHORT_SCALES = {"k": 1_000, "m": 1_000_000, "mn": 1_000_000, "b": 1_000_000_000, "bn": 1_000_000_000}

# Words a sentence may start with that are not names (nor a name's first word: "The Hague" keeps "hague").
_FUNCTION_WORDS_TEXT = """
a about above according across after again against all almost along also although always among an and
another any anyone anything are around as at because been before being below besides between both but
by can could did do does during each either else even ever every everyone everything few for from
further had has have having he her here hers herself him himself his how however i if in inside instead
into is it its itself just least less like many may maybe me might more most much must my myself near
neither never no nobody none nor not nothing now of off often on once one only onto or other others
otherwise our ours ourselves out over overall own per perhaps please rather same several she should
since so some someone something sometimes soon still such than that the their theirs them themselves
then there therefore these they this those though through throughout thus to today together too
toward towards under unless until up upon us usually very was we were what whatever when whenever
where whereas wherever whether which while who whom whose why will with within without would yes yet
you your yours yourself answer question note example first second third finally next last lastly
based given here's it's that's there's they're we're i'm let let's sure okay ok certainly indeed
according both yes no true false later earlier meanwhile afterwards eventually soon initially
originally today currently tomorrow yesterday instead unlike despite following including
"""
_FUNCTION_WORDS = frozenset(_FUNCTION_WORDS_TEXT.split())
_CONNECTORS = r"(?:of|the|de|del|della|der|den|van|von|la|le|du|da|di|dos|das|y|al|bin|ibn)"
_WORD = re.compile(r"[^\W\d_][\w'\u2019-]*")
_GAP = re.compile(r"[ \t\u00a0]+")  # names never span punctuation or a line break
# What may stand before a sentence's first word: the text's start or a sentence end, a list bullet or
# number, then blanks, quotes or brackets.
_OPENING = re.compile(r"(?:\A|[.!?:;\n]|(?:\A|\n)[ \t]*(?:[-*\u2022]|\d+[.)]))[\s\"'\u201c\u2018(\[]*\Z")


def _fold(text: str) -> str:
    """Case-folded, accents dropped, typographic apostrophes made plain."""
    text = unicodedata.normalize("NFKD", text.replace("\u2019", "'"))
    return "".join(c for c in text if not unicodedata.combining(c)).casefold()


def _plain_number(value: Decimal) -> str:
    """`value` in digits, no exponent, no trailing decimal zeros: 1200.0 -> '1200', 3.50 -> '3.5'."""
    text = format(value.normalize(), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def _word_value(word: str) -> int:
    parts = re.split(r"[- \t]+", word.lower())
    total = 0
    for part in parts:
        total += _TENS_WORDS.get(part) or _UNITS_WORDS.get(part) or _ONE_WORDS.get(part, 0)
    return total


def _numbers(text: str) -> list[tuple[int, int, str]]:
    """(start, end, normal form) of each number in `text`."""
    found: list[tuple[int, int, str]] = []
    for m in _NUMBER.finditer(text):
        if _LIST_NUMBER.match(text, m.start()) and (m.start() == 0 or text[:m.start()].rstrip(" \t").endswith("\n")
                                                   or not text[:m.start()].strip()):
            continue  # "1. " opening a line numbers a list item: no fact
        if m.group("digits") is not None:
            try:
                value = Decimal(m.group("digits").replace(",", ""))
            except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
                continue
            scale = (m.group("dscale") or "").lower()
            if scale in _SCALES:
                value *= _SCALES[scale]
            elif scale in _SHORT_SCALES:
                value *= _SHORT_SCALES[scale]
        else:
            word = m.group("word")
            wscale = (m.group("wscale") or "").lower()
            if word.lower() in _ONE_WORDS and not wscale:
                continue  # "one" or "a" alone is no fact
            value = Decimal(_word_value(word)) * _SCALES.get(wscale, 1)
        found.append((m.start(), m.end(), _plain_number(value)))
    return found


def _dates(text: str) -> list[tuple[int, int, str]]:
    """(start, end, ISO form) of each date in `text`: YYYY-MM-DD, YYYY-MM or --MM-DD."""
    found: list[tuple[int, int, str]] = []
    for m in _DATE.finditer(text):
        if m.group("iso"):
            found.append((m.start(), m.end(), f"{m.group('iso')}-{m.group('isom')}-{m.group('isod')}"))
            continue
        month_word = m.group("m1") or m.group("m2") or m.group("m3")
        day_text = m.group("d1") or m.group("d2")
        year = m.group("y1") or m.group("y2") or m.group("y3")
        month = _MONTHS[month_word.rstrip(".").lower()]
        if month_word.lower() == "may" and not year and m.group("d2") and m.start() == 0:
            continue  # "May 3 ..." opening a sentence is ambiguous enough; "May 3" mid-text is a date
        day = int(re.sub(r"\D", "", day_text)) if day_text else None
        if day is None:
            found.append((m.start(), m.end(), f"{int(year):04d}-{month:02d}"))
        elif year:
            found.append((m.start(), m.end(), f"{int(year):04d}-{month:02d}-{day:02d}"))
        else:
            found.append((m.start(), m.end(), f"--{month:02d}-{day:02d}"))
    return found


# At most this many words (numbers and dates aside): a short answer ("Dunmere.", "Brisk, in 1868."),
# whose one capitalised word is a name, not a sentence that happens to open with a capital (short
# answers are what a knowledge pair and a closed-book reference hold; an adverb such as "Mostly." is
# still no name).
SHORT_ANSWER_WORDS = 3


def _names(text: str, taken: list[tuple[int, int]]) -> list[tuple[int, int, str]]:
    """(start, end, normal form) of each proper name outside the `taken` spans (dates, numbers): a
    run of capitalised words, with connectors ("of", "van") inside it, leading function words dropped."""
    tokens = [(m.start(), m.end(), m.group()) for m in _WORD.finditer(text)
              if not any(s < m.end() and m.start() < e for s, e in taken)]

    def capital(i: int) -> bool:
        return tokens[i][2][:1].isupper()

    def adjacent(i: int) -> bool:  # token i follows token i-1 with only blanks between
        return i > 0 and bool(_GAP.fullmatch(text[tokens[i - 1][1]:tokens[i][0]]))

    def opening(i: int) -> bool:  # token i opens a sentence
        return bool(_OPENING.search(text[max(0, tokens[i][0] - 12):tokens[i][0]])) if tokens[i][0] >= 12 \
            else bool(_OPENING.search(text[:tokens[i][0]]))

    # A sentence's first word is capitalised whatever it is; it counts as a name when the text also
    # writes it capitalised inside a sentence (or it starts a run of capitalised words).
    inner_capitals = {_fold(w) for t, (_, _, w) in enumerate(tokens) if capital(t) and not opening(t)}
    fragment = len(tokens) <= SHORT_ANSWER_WORDS  # a short answer: its one capitalised word is a name
    found: list[tuple[int, int, str]] = []
    i = 0
    while i < len(tokens):
        if not capital(i):
            i += 1
            continue
        run = [i]
        j = i + 1
        while j < len(tokens) and adjacent(j):
            if capital(j):
                run.append(j)
                j += 1
                continue
            # connectors: "University of Oslo", "Order of the Garter", "Ludwig van Beethoven"
            k = j
            while k < len(tokens) and adjacent(k) and not capital(k) \
                    and re.fullmatch(_CONNECTORS, tokens[k][2]) and k - j < 2:
                k += 1
            if k > j and k < len(tokens) and adjacent(k) and capital(k):
                run.extend(range(j, k + 1))
                j = k + 1
                continue
            break
        i = j
        words = [tokens[t] for t in run]
        while words and (_fold(words[0][2]).strip("'") in _FUNCTION_WORDS or not words[0][2][:1].isupper()
                         or (words[0][0] == tokens[run[0]][0] and opening(run[0]) and len(words) > 1
                             and words[0][2].lower().endswith("ly"))):
            words.pop(0)  # "The Hague" -> "hague"; "In Oslo" -> "oslo"; "Finally Oslo" -> "oslo"
        if not words or (len(words) == 1 and words[0][0] == tokens[run[0]][0] and opening(run[0])
                         and _fold(words[0][2]) not in inner_capitals
                         and not (fragment and not words[0][2].lower().endswith("ly"))):
            continue
        name = text[words[0][0]:words[-1][1]]
        folded = re.sub(r"'s?$", "", _fold(" ".join(w for _, _, w in words))).strip("'-")
        if not folded or (len(words) == 1 and folded.rstrip(".") in _MONTHS):
            continue  # a month outside a date is not a fact worth checking
        found.append((words[0][0], words[0][0] + len(name), folded))
    return found


def _facts_with_spans(text: str) -> list[tuple[int, int, str, str]]:
    """(start, end, kind, normal form) of each fact in `text`, in text order."""
    dates = _dates(text)
    taken = [(s, e) for s, e, _ in dates]
    numbers = [n for n in _numbers(text) if not any(s < n[1] and n[0] < e for s, e in taken)]
    taken += [(s, e) for s, e, _ in numbers]
    names = _names(text, taken)
    spans = [(s, e, "date", v) for s, e, v in dates] + [(s, e, "number", v) for s, e, v in numbers] \
        + [(s, e, "name", v) for s, e, v in names]
    return sorted(spans)


def key_facts(text: str) -> tuple[str, ...]:
    """The numbers, dates and proper names of `text`, normalised (see the module's docstring), each
    once, in order of first occurrence."""
    seen: dict[str, None] = {}
    for _, _, _, value in _facts_with_spans(text):
        seen.setdefault(value, None)
    return tuple(seen)


def count_facts(text: str) -> int:
    """How many distinct key facts `text` holds, as a plan counts what there is to ask about: Markdown
    heading lines are left out (a section title is not a fact), and a name all of whose words belong to
    a longer name of the text is that name again ("Oskant" after "Mirela Oskant", "Salt" in "Kessary
    Salt Railway"). Counted this way, bench/heldout's Kessary document holds 45 rather than 65 (closer to one a sentence's
    worth, not one a capitalised word)."""
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    facts = _facts_with_spans(body)
    names = [set(v.split()) for _, _, kind, v in facts if kind == "name"]
    distinct = set()
    for _, _, kind, value in facts:
        if kind == "name" and any(set(value.split()) < other for other in names):
            continue
        distinct.add((kind, value))
    return len(distinct)


def _words(text: str) -> frozenset[str]:
    return frozenset(re.findall(r"[^\W_]+", _fold(text)))


def _date_supported(date: str, source_dates: frozenset[str]) -> bool:
    if date.startswith("--"):
        return any(d.endswith(date[1:]) and len(d) == 10 or d == date for d in source_dates)
    return any(d == date or d.startswith(date + "-") for d in source_dates)


def unsupported_facts(answer: str, source: str) -> tuple[str, ...]:
    """The key facts of `answer` that `source` does not hold after normalisation, in the answer's
    order: an empty tuple means every number, date and name of the answer is in the source."""
    source_facts = _facts_with_spans(source)
    # Every number the source writes counts, also the ones inside its dates ("2 March 1899" holds 2 and 1899).
    source_numbers = frozenset(v for _, _, v in _numbers(source)) \
        | frozenset(v for _, _, kind, v in source_facts if kind == "number")
    source_dates = frozenset(v for _, _, kind, v in source_facts if kind == "date")
    for date in source_dates:
        if not date.startswith("--"):
            source_numbers |= {str(int(date[:4]))}
    source_words = _words(source)
    missing: dict[str, None] = {}
    for _, _, kind, value in _facts_with_spans(answer):
        if kind == "number":
            ok = value in source_numbers
        elif kind == "date":
            ok = _date_supported(value, source_dates) or (
                len(value) == 7 and value[:4].isdigit() and value in {d[:7] for d in source_dates})
        else:
            ok = all(w in source_words or (w.endswith("s") and w[:-1] in source_words)
                     or w + "s" in source_words
                     for w in re.findall(r"[^\W_]+", value)
                     if not re.fullmatch(_CONNECTORS, w))
        if not ok:
            missing.setdefault(value, None)
    return tuple(missing)


def given_away(question: str, answer: str) -> bool:
    """Whether `question` already states every key fact of `answer` ("When did the winter flood of
    1962 fill the lower rooms? In 1962."): such a pair teaches no fact, and held out as a closed-book
    test item its key facts are found in any reply that echoes the question. False for an answer with
    no key fact (nothing to compare)."""
    return bool(key_facts(answer)) and not unsupported_facts(answer, question)

