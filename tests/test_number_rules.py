"""The recipient and number rules, table by table: what is refused, with which reply."""

from __future__ import annotations

import pytest

from mailfax import number_policy
from mailfax.number_policy import NumberPolicy, normalise_prefix, number_kinds, prefix_kinds
from mailfax.policy import FaxRecipient, Refusal, format_for_humans, read_recipient

# One example of every number type [policy] refused_types can name, and what it looks like.
EXAMPLE_OF_TYPE = {
    "premium-rate": "+449012345678",  # UK 0901
    "shared-cost": "+37380812345",  # Moldova 0808
    "toll-free": "+18002345678",  # US/Canada 1-800
    "voip": "+445612345678",  # UK 056
    "personal": "+447012345678",  # UK 070 "follow me" numbers
    "pager": "+447640123456",  # UK 076
    "uan": "+445512345678",  # UK 055 corporate numbers
    "voicemail": "+41860123456789",  # Swiss 0860
    "mobile": "+4915123456789",  # German mobile
}
EVERY_TYPE = frozenset(EXAMPLE_OF_TYPE) | {"emergency", "short-code"}


@pytest.mark.parametrize(("kind", "number"), sorted(EXAMPLE_OF_TYPE.items()))
def test_every_refusable_type_is_recognised_and_refused_by_name(kind: str, number: str) -> None:
    assert number_kinds(number) == {kind}
    article = "an" if kind[0] in "aeiou" else "a"
    refusal = NumberPolicy.from_lists({"refused_types": sorted(EVERY_TYPE)}).refusal(number)
    assert refusal == Refusal(
        550,
        "5.7.1",
        f"Fax to {number} refused: it is {article} {kind} number",
        rule="[policy] refused_types",
    )
    # Refusing every other type lets this number through.
    others = NumberPolicy.from_lists({"refused_types": sorted(EVERY_TYPE - {kind})})
    assert others.refusal(number) is None


def test_an_ordinary_fixed_line_is_of_no_refusable_type() -> None:
    assert number_kinds("+4930123456") == set()
    refuse_all = NumberPolicy.from_lists({"refused_types": sorted(EVERY_TYPE)})
    assert refuse_all.refusal("+4930123456") is None


def test_emergency_numbers_are_refused_as_such() -> None:
    refusal = NumberPolicy.from_lists({"refused_types": ["emergency"]}).refusal("+49112")
    assert refusal is not None
    assert refusal.text == "Fax to +49112 refused: it is an emergency number"


def test_the_first_type_alphabetically_names_a_number_of_two() -> None:
    policy = NumberPolicy.from_lists({"refused_types": ["short-code", "emergency"]})
    refusal = policy.refusal("+49112")
    assert refusal is not None and "it is an emergency number" in refusal.text


@pytest.mark.parametrize(
    ("written", "prefix"),
    [
        ("+44 9", "+449"),
        ("+1-900", "+1900"),
        (" +49 30 ", "+4930"),
        ("+7", "+7"),
        ("+", None),
        ("", None),
        ("44", None),
        ("+44x", None),
        ("++44", None),
    ],
)
def test_prefixes_are_plus_and_digits_with_spaces_and_dashes_dropped(
    written: str, prefix: str | None
) -> None:
    assert normalise_prefix(written) == prefix


def test_unusable_prefixes_are_ignored_and_the_rest_apply() -> None:
    policy = NumberPolicy.from_lists({"allowed_prefixes": ["49", "+49 30"]})
    assert policy.allowed_prefixes == ("+4930",)
    assert policy.refusal("+4930123456") is None


# Each rule, the reply it gives, in the order the rules are checked.
RULES = {
    "blocked_prefixes": ["+1 900"],
    "allowed_prefixes": ["+1", "+49"],
    "allowed_countries": ["us", "CA"],
    "refused_types": ["toll-free"],
}


@pytest.mark.parametrize(
    ("number", "why", "key"),
    [
        ("+19005550100", "+1900 is a blocked prefix", "blocked_prefixes"),
        ("+33142000000", "it has none of the allowed prefixes", "allowed_prefixes"),
        ("+4930123456", "DE is not an allowed country", "allowed_countries"),
        ("+18002345678", "it is a toll-free number", "refused_types"),
    ],
)
def test_each_number_rule_names_itself_to_the_operator_only(
    number: str, why: str, key: str
) -> None:
    refusal = NumberPolicy.from_lists(RULES).refusal(number)
    assert refusal == Refusal(
        550, "5.7.1", f"Fax to {number} refused: {why}", rule=f"[policy] {key}"
    )
    assert key not in refusal.smtp_reply


def test_a_number_of_no_known_country_says_so() -> None:
    policy = NumberPolicy.from_lists({"allowed_countries": ["US"]})
    refusal = policy.refusal("+99912345678")
    assert refusal is not None
    assert refusal.text == "Fax to +99912345678 refused: its country is not an allowed country"


def test_a_users_own_rules_are_named_as_theirs() -> None:
    policy = NumberPolicy.from_lists(
        {"refused_types": ["mobile"], "allowed_countries": ["DE"]}, source="user bob"
    )
    mobile = policy.refusal("+4915123456789")
    assert mobile is not None and mobile.rule == "refused_types of user bob"
    foreign = policy.refusal("+17185554567")
    assert foreign is not None and foreign.rule == "allowed_countries of user bob"
    assert "bob" not in mobile.text + foreign.text


def test_no_rules_refuse_nothing() -> None:
    policy = NumberPolicy.from_lists({})
    assert policy == NumberPolicy()
    assert policy.refusal("+449012345678") is None


# --- the recipient address ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "verdict"),
    [
        ("17185554567@fax.local", "+17185554567"),
        (" +17185554567@fax.local ", "+17185554567"),
        ("17185554567@fax.local.", "+17185554567"),  # a fully qualified domain
        ("postmaster@fax.local", "<postmaster@fax.local> is not a fax number"),
        ("postmaster", "Relaying denied"),
        ("17185554567@fax.local.example", "Relaying denied"),
        ("17185554567@.fax.local", "Relaying denied"),
        ("17185554567", "Relaying denied"),
        ("a@b@fax.local", "<a@b@fax.local> is not a fax number"),
    ],
)
def test_recipient_addresses(address: str, verdict: str) -> None:
    result = read_recipient(address, "fax.local", "US", "valid")
    if verdict.startswith("+"):
        assert result == FaxRecipient(verdict)
    else:
        assert isinstance(result, Refusal) and result.text.startswith(verdict)


def test_a_local_part_that_is_not_a_number_is_told_how_to_write_one() -> None:
    refusal = read_recipient("sales@fax.local", "fax.local", "US", "valid")
    assert refusal == Refusal(
        550,
        "5.1.1",
        "<sales@fax.local> is not a fax number: write the number as the local part, "
        "e.g. +12125550199@fax.local",
    )
    assert refusal.smtp_reply == f"550 5.1.1 {refusal.text}"


@pytest.mark.parametrize(
    ("e164", "shown"),
    [
        ("+17185554567", "+1 718-555-4567"),
        ("+4930123456", "+49 30 123456"),
        ("+442079460000", "+44 20 7946 0000"),
        ("not a number", "not a number"),
    ],
)
def test_numbers_are_shown_to_people_in_international_format(e164: str, shown: str) -> None:
    assert format_for_humans(e164) == shown


# --- invalid numbers, typed by how they start ----------------------------------------------


@pytest.fixture
def fresh_prefix_rules() -> None:
    """The prefix rules derived from libphonenumber's metadata in this test, not reused."""
    prefix_kinds.cache_clear()
    number_policy._prefix_rules.cache_clear()


@pytest.mark.parametrize(
    ("number", "kinds"),
    [
        # a digit more or less than a valid number of the type
        ("+4990012345670", {"premium-rate"}),  # Germany 0900
        ("+4390012345", {"premium-rate"}),  # Austria 0900
        ("+44901234567", {"premium-rate"}),  # UK 09
        ("+61190012345", {"premium-rate"}),  # Australia 1900
        ("+32900123450", {"premium-rate"}),  # Belgium 0900
        ("+19000550100", {"premium-rate"}),  # North America 1-900
        ("+448001234", {"toll-free"}),  # UK 0800
        ("+1833555012", {"toll-free"}),  # North America 1-833 (8[3-8]3: a range's last digit)
        ("+3380812345", {"uan"}),  # France 0808
        ("+4915123456", {"mobile"}),  # Germany 015
        ("+44756123456", {"mobile"}),  # UK 07
        ("+3361234567", {"mobile"}),  # France 06
        # valid numbers have their own type; mistyped ordinary numbers start like none
        ("+4930123456", set()),
        ("+17185554567", set()),
        ("+4930123456789012", set()),
        ("+4412345", set()),
    ],
)
@pytest.mark.usefixtures("fresh_prefix_rules")
def test_an_invalid_number_is_typed_by_how_it_starts(number: str, kinds: set[str]) -> None:
    assert prefix_kinds(number) == kinds
