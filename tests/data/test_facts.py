"""labtax.data.facts: the key facts of a text and the extractive check, by example and by property."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from labtax.data.facts import count_facts, key_facts, unsupported_facts

SOURCE = ("The Ostrava Guild of Lamp Makers was founded on 2 March 1899 by Marie Vell in Brno. "
          "By 1910 it had 1,200 members and sold lamps to twelve countries; its budget was $3.5 million.")


def test_the_facts_of_a_text_in_normal_form_and_order() -> None:
    assert key_facts(SOURCE) == ("ostrava guild of lamp makers", "1899-03-02", "marie vell", "brno", "1910",
                                 "1200", "12", "3500000")
    assert count_facts(SOURCE) == 8


def test_the_same_fact_written_two_ways_is_one_normal_form() -> None:
    for a, b in [("1,200 km", "1200"), ("$1.2 thousand", "1200"), ("3.50%", "3.5"), ("the 5th", "5"),
                 ("twenty-five", "25"), ("a million", "1000000"), ("2 bn", "2000000000"),
                 ("2 March 1899", "1899-03-02"), ("March 2, 1899", "1899-03-02"), ("1899-03-02", "1899-03-02"),
                 ("2nd of March 1899", "1899-03-02"), ("Sept. 1899", "1899-09"), ("on 4 July", "--07-04"),
                 ("by the University of Oslo's staff", "university of oslo"), ("with José Ruiz", "jose ruiz")]:
        assert key_facts(a) == (b,), a


def test_sentence_openers_and_list_numbers_are_no_facts() -> None:
    assert key_facts("The queen lays eggs. Workers forage. In summer drones fly.") == ()
    assert key_facts("1. The queen\n2. The workers") == ()
    assert key_facts("Finally Oslo grew. Oslo is big; people love Oslo.") == ("oslo",)
    assert key_facts("one bee, a bee") == ()


def test_a_faithful_answer_is_supported_and_a_wrong_fact_is_named() -> None:
    assert unsupported_facts("Marie Vell founded it in March 1899 with 1200 members.", SOURCE) == ()
    assert unsupported_facts("It was founded in 1899 in Brno by Vell.", SOURCE) == ()
    assert unsupported_facts("It was founded on March 2.", SOURCE) == ()
    assert unsupported_facts("It sold lamps to 12 countries on a 3.5 million dollar budget.", SOURCE) == ()
    assert unsupported_facts("It was founded on 2 March 1898 by Pavel Vell in Prague.", SOURCE) == (
        "1898-03-02", "pavel vell", "prague")
    assert unsupported_facts("It had 1,300 members by 1910.", SOURCE) == ("1300",)
    assert unsupported_facts("The guild is old.", SOURCE) == ()


words = st.sampled_from(["the", "guild", "lamps", "was", "sold", "in", "and", "members", "by", "of"])
names = st.sampled_from(["Marie Vell", "Brno", "University of Oslo", "Ludwig van Beethoven", "Karel", "NASA"])
numbers = st.integers(min_value=0, max_value=10**7).flatmap(
    lambda n: st.sampled_from([str(n), f"{n:,}", f"{n}.0", f"{n} km", f"${n:,}"]))
dates = st.tuples(st.integers(1, 28), st.sampled_from(["January", "March", "May", "Sept.", "December"]),
                  st.integers(1000, 2099)).flatmap(
    lambda d: st.sampled_from([f"{d[0]} {d[1]} {d[2]}", f"{d[1]} {d[0]}, {d[2]}", f"{d[1]} {d[2]}"]))
fragments = st.lists(st.one_of(words, names, numbers, dates), min_size=1, max_size=12)
texts = st.lists(fragments.map(" ".join), min_size=1, max_size=3).map(lambda ss: ". ".join(ss) + ".")


@settings(max_examples=80, deadline=None)
@given(texts)
def test_every_text_supports_its_own_facts(text: str) -> None:
    assert unsupported_facts(text, text) == ()


@settings(max_examples=80, deadline=None)
@given(texts, texts)
def test_a_source_that_holds_the_answer_supports_it(answer: str, source: str) -> None:
    assert unsupported_facts(answer, source + "\n\n" + answer) == ()


@settings(max_examples=80, deadline=None)
@given(texts, texts)
def test_the_check_ignores_the_sources_case(answer: str, source: str) -> None:
    expected = unsupported_facts(answer, source)
    assert unsupported_facts(answer, source.upper()) == expected
    assert unsupported_facts(answer, source.lower()) == expected


@settings(max_examples=80, deadline=None)
@given(st.integers(min_value=1000, max_value=10**9))
def test_thousands_separators_and_units_do_not_change_a_number(n: int) -> None:
    assert key_facts(f"It cost {n:,} dollars.") == key_facts(f"It cost {n} dollars.") == (str(n),)
    assert unsupported_facts(f"about {n}", f"It weighs {n:,} kg.") == ()
    assert unsupported_facts(f"about {n + 1}", f"It weighs {n:,} kg.") == (str(n + 1),)


@settings(max_examples=100, deadline=None)
@given(texts)
def test_the_count_is_the_number_of_distinct_facts(text: str) -> None:
    facts = key_facts(text)
    assert count_facts(text) <= len(facts) == len(set(facts))


def test_the_count_leaves_out_headings_and_a_name_repeated_in_part() -> None:
    text = "# The Building\n\nThe engineer Mirela Oskant planned it. Oskant was paid 5 crowns in Brisk."
    assert key_facts(text) == ("building", "mirela oskant", "oskant", "5", "brisk")
    assert count_facts(text) == 3  # mirela oskant, 5, brisk


def test_a_short_answer_of_one_name_holds_that_name() -> None:
    # A knowledge pair's answer is often the name alone: its one capitalised word is the fact (it was
    # not counted, so "Dunmere." passed the extractive check unchecked and scored no closed-book item).
    assert key_facts("Dunmere.") == ("dunmere",)
    assert key_facts("Saltmarsh, Grey Heron.") == ("saltmarsh", "grey heron")
    assert set(key_facts("Brisk, in 1868.")) == {"brisk", "1868"}
    assert unsupported_facts("Pellbury.", "The line ran from Dunmere to Hallowick.") == ("pellbury",)
    # Not for function words, adverbs or longer sentences that open with a capital.
    assert key_facts("Yes.") == () and key_facts("Mostly salt.") == ()
    assert key_facts("Finally the line closed for good.") == ()
