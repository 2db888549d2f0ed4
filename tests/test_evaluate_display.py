"""How Table III/IV print their numbers, in process: p-values on the exact fraction (truncated as the paper prints
them, or rounded half-to-even), the omnibus sentence of each kind of design, and LaTeX-safe text."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from erc.evaluation.tables import Display, _tex_escape, omnibus_text


@pytest.mark.parametrize("value,mode,digits,shown", [
    (Fraction(20259, 100000), "truncate", 4, "0.2025"),   # the paper's 0.20259
    (Fraction(20259, 100000), "round", 4, "0.2026"),
    (Fraction(15, 10**5), "round", 4, "0.0002"),         # half to even: 1.5 -> 2 ...
    (Fraction(25, 10**5), "round", 4, "0.0002"),         # ... and 2.5 -> 2
    (Fraction(1, 10**6), "truncate", 4, "<0.0001"),       # positive but below the last digit
    (Fraction(5, 10**5), "round", 4, "<0.0001"),          # rounds to 0 (half to even), still positive
    (Fraction(0), "truncate", 4, "0.0000"),
    (Fraction(1), "truncate", 4, "1.0000"),
    (Fraction(1), "round", 2, "1.00"),
    (Fraction(2, 3), "truncate", 2, "0.66"),
    (Fraction(2, 3), "round", 2, "0.67"),
    (Fraction(1, 200), "truncate", 2, "<0.01"),
    (Fraction(1, 3), "truncate", 1, "0.3"),                # one decimal is the least
])
def test_p_values_print_from_the_exact_fraction(value, mode, digits, shown) -> None:
    assert Display(p_digits=digits, p_mode=mode).p(value) == shown


@pytest.mark.parametrize("settings,message", [({"p_mode": "ceil"}, "display.p_mode must be 'truncate' or 'round'"),
                                              ({"p_digits": 0}, "display.p_digits must be >= 1, got 0")])
def test_bad_display_settings_are_refused_naming_the_key(settings, message) -> None:
    with pytest.raises(ValueError, match=message):
        Display(**settings)


def test_display_names_models_sources_instances_and_test_sets() -> None:
    display = Display(names={"compm": "CoMPM"}, sources={"bal": "Balanced"})
    assert display.model("compm[pm=scratch]") == "CoMPM [pm=scratch]" and display.model("other") == "other"
    assert display.instance("compm[pm=scratch]_bal") == "CoMPM [pm=scratch] Balanced"
    assert display.test_set("meld_bal") == "MELD Balanced" and display.test_set("mine_x") == "mine_x"


def test_the_omnibus_sentence_of_each_kind_of_design() -> None:
    """A test not run says why; undefined statistics name their degrees of freedom; an infinite F shows as ∞ with the
    degeneracy; an ordinary one gives chi-square and F to 3 decimals and p to 3 significant digits."""
    base = {"chi2_df": 2, "f_df1": 2, "f_df2": 6}
    assert omnibus_text({"not_computed": "needs 3"}) == "needs 3: not computed."
    undefined = omnibus_text({**base, "chi2": math.nan, "degenerate": "all tied"})
    assert undefined == "Friedman χ²(2) and Iman-Davenport F(2, 6) undefined: all tied."
    infinite = omnibus_text({**base, "chi2": 8.0, "chi2_p": 0.0183156, "iman_davenport_f": math.inf, "f_p": 0.0,
                             "degenerate": "identical"})
    assert infinite == ("Friedman χ²(2) = 8.000, p = 0.0183; Iman-Davenport F(2, 6) = ∞, p = 0. "
                        "Degenerate: identical.")
    ordinary = omnibus_text({**base, "chi2": 4.5, "chi2_p": 0.105399, "iman_davenport_f": 3.8571428, "f_p": 0.0841,
                             "degenerate": None})
    assert ordinary == "Friedman χ²(2) = 4.500, p = 0.105; Iman-Davenport F(2, 6) = 3.857, p = 0.0841."


def test_latex_text_escapes_every_special_character() -> None:
    assert _tex_escape(r"a_b & 50% #1 <0.05 ± — – χ² ∞ \x") == (
        r"a\_b \& 50\% \#1 \textless{}0.05 $\pm$ --- -- $\chi^2$ $\infty$ \textbackslash{}x")
