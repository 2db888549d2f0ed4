import pytest

from erc.data.text import normalise_text


@pytest.mark.parametrize("raw,expected", [
    ("You must\u2019ve had", "You must've had"),          # curly apostrophe
    ("You must've had", "You must've had"),              # straight stays
    ("You must\x92ve had", "You must've had"),           # cp1252 stored as a C1 character
    ("You mustâ€™ve had", "You must've had"),            # UTF-8 read as cp1252
    ("\x93Hi\x94 she said\x85", '"Hi" she said…'),
    ("â€œHi!â€\x9d", '"Hi!"'),
    ("Waitâ€¦ what", "Wait… what"),
    ("a\xa0b ", "a b"),
])
def test_quotes_are_normalised_one_way_and_mojibake_repaired(raw, expected):
    assert normalise_text(raw) == expected
