"""WHO 2007 (5–19 y) z-scores against WHO's published reference values."""

import numpy as np
import pytest

from risk.features import growth
from risk.features.growth import who_zscores

BMI = "bmi_for_age"
HFA = "height_for_age"


def _sd_line(L: float, M: float, S: float, k: float) -> float:
    return M * (1 + L * S * k) ** (1 / L)


def test_packaged_table_has_whos_published_lms_at_61_months():
    # WHO BMI-for-age 5–19 y tables, 61 months (5 y 1 m).
    boys = growth.lms_table(BMI)[0, 0]
    girls = growth.lms_table(BMI)[1, 0]
    np.testing.assert_array_equal(boys, [-0.7387, 15.2641, 0.08390])
    np.testing.assert_array_equal(girls, [-0.8886, 15.2441, 0.09692])


def test_packaged_table_covers_61_to_228_months_for_both_indicators():
    for indicator in growth.INDICATORS:
        assert growth.lms_table(indicator).shape == (2, 168, 3)
    # Last row, WHO height-for-age girls 228 months (19 y 0 m).
    np.testing.assert_array_equal(growth.lms_table(HFA)[1, -1], [1, 163.1548, 0.04009])


def test_value_equal_to_median_at_whole_month_is_zero():
    # Boys 120 months: BMI median 16.4433; girls 150 months: height median 154.0041.
    assert who_zscores(BMI, "male", 120, 16.4433) == pytest.approx(0, abs=1e-12)
    assert who_zscores(HFA, "female", 150, 154.0041) == pytest.approx(0, abs=1e-12)


@pytest.mark.parametrize(
    ("sex", "months", "minus2_published", "plus2_published"),
    [
        # WHO BMI-for-age z-score tables (1 decimal as printed).
        ("male", 61, 13.0, 18.3),
        ("male", 120, 13.7, 21.4),
        ("male", 180, 16.0, 27.0),
        ("male", 228, 17.6, 29.7),
        ("female", 61, 12.7, 18.9),
        ("female", 108, 13.1, 21.5),
    ],
)
def test_bmi_sd_lines_give_plus_minus_two(sex, months, minus2_published, plus2_published):
    L, M, S = growth.lms_table(BMI)[growth.SEXES.index(sex), months - 61]
    minus2, plus2 = _sd_line(L, M, S, -2), _sd_line(L, M, S, 2)
    # The lines derived from L, M, S are the ones WHO prints ...
    assert round(minus2, 1) == minus2_published
    assert round(plus2, 1) == plus2_published
    # ... and they score exactly -2 and +2.
    z = who_zscores(BMI, [sex, sex], [months, months], [minus2, plus2])
    np.testing.assert_allclose(z, [-2, 2], atol=1e-12)


def test_height_sd_line_is_median_times_one_plus_k_s():
    # Height has L = 1, so the -2 SD line is M (1 - 2 S): boys 61 months,
    # 110.2647 × (1 - 2 × 0.04164) = 101.0819 cm, the stunting threshold.
    minus2 = 110.2647 * (1 - 2 * 0.04164)
    assert who_zscores(HFA, "male", 61, minus2) == pytest.approx(-2, abs=1e-12)
    assert who_zscores(HFA, "male", 61, 101.0819) == pytest.approx(-2, abs=1e-5)


def test_lms_interpolated_linearly_between_whole_months():
    # Boys 120.5 months: halfway between 120 (L -1.7407, M 16.4433, S 0.10566)
    # and 121 (L -1.7468, M 16.4807, S 0.10609): L -1.74375, M 16.462, S 0.105875.
    assert who_zscores(BMI, "male", 120.5, 16.462) == pytest.approx(0, abs=1e-12)
    # BMI 20 at that age: ((20 / 16.462) ** -1.74375 - 1) / (-1.74375 × 0.105875) = 1.5592
    expected = ((20 / 16.462) ** -1.74375 - 1) / (-1.74375 * 0.105875)
    assert who_zscores(BMI, "male", 120.5, 20.0) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(1.5592, abs=1e-4)


def test_interpolation_weights_by_fraction_of_month():
    # Girls height at 100.25 months: M = 128.5109 + 0.25 × (129.0035 - 128.5109) = 128.63405.
    assert who_zscores(HFA, "female", 100.25, 128.63405) == pytest.approx(0, abs=1e-12)


def test_bmi_above_plus_three_uses_whos_linear_extension():
    # Boys 120 months: SD3pos = 26.0732, SD2pos = 21.3999 (from L, M, S).
    # BMI 30: z = 3 + (30 - 26.0732) / (26.0732 - 21.3999) = 3.8403,
    # where plain LMS would give 3.528.
    assert who_zscores(BMI, "male", 120, 30.0) == pytest.approx(3.8403, abs=1e-4)


def test_bmi_below_minus_three_uses_whos_linear_extension():
    # Boys 120 months: SD3neg = 12.7751, SD2neg = 13.7353.
    # BMI 12: z = -3 + (12 - 12.7751) / (13.7353 - 12.7751) = -3.8071,
    # where plain LMS would give -3.971.
    assert who_zscores(BMI, "male", 120, 12.0) == pytest.approx(-3.8071, abs=1e-4)


def test_bmi_at_plus_three_line_is_continuous():
    L, M, S = growth.lms_table(BMI)[1, 150 - 61]
    sd3 = _sd_line(L, M, S, 3)
    z = who_zscores(BMI, "female", 150, [sd3 - 1e-9, sd3, sd3 + 1e-9])
    np.testing.assert_allclose(z, 3, atol=1e-6)


def test_height_beyond_three_sd_stays_plain_lms():
    # Boys 120 months, M 137.7795, S 0.04626: 4 SD above is M (1 + 4 S).
    tall = 137.7795 * (1 + 4 * 0.04626)
    assert who_zscores(HFA, "male", 120, tall) == pytest.approx(4, abs=1e-9)


@pytest.mark.parametrize("months", [60.99, 228.01, 48, 240, np.nan])
def test_nan_outside_61_to_228_months(months):
    assert np.isnan(who_zscores(BMI, "male", months, 16.0))


def test_age_limits_61_and_228_are_included():
    z = who_zscores(HFA, ["male", "female"], [61, 228], [110.2647, 163.1548])
    np.testing.assert_allclose(z, [0, 0], atol=1e-12)


@pytest.mark.parametrize("value", [np.nan, 0.0, -5.0])
def test_nan_for_missing_or_non_positive_value(value):
    assert np.isnan(who_zscores(BMI, "female", 100, value))


@pytest.mark.parametrize("sex", [None, np.nan, "", "unknown", "M"])
def test_nan_for_unknown_sex(sex):
    assert np.isnan(who_zscores(BMI, np.array([sex], dtype=object), 100, 16.0)[0])


def test_unknown_indicator_is_rejected():
    with pytest.raises(ValueError, match="indicator"):
        who_zscores("weight_for_age", "male", 100, 25.0)


def test_vectorised_call_equals_scalar_calls():
    rng = np.random.default_rng(7)
    n = 300
    sex = rng.choice(np.array(["male", "female", "other"], dtype=object), n)
    age = rng.uniform(55, 235, n)
    bmi = rng.uniform(9, 40, n)
    bmi[::17] = np.nan
    z = who_zscores(BMI, sex, age, bmi)
    one_by_one = [who_zscores(BMI, s, a, b) for s, a, b in zip(sex, age, bmi, strict=True)]
    np.testing.assert_array_equal(z, np.array(one_by_one, dtype=np.float64))
    assert z.dtype == np.float64
    assert np.isfinite(z).sum() > n // 2  # most inputs in range: not trivially all NaN


def test_age_in_months_counts_days_over_30_4375():
    birth = np.array(["2010-01-01", "2012-05-16", "NaT"], dtype="datetime64[D]")
    measured = np.array(["2020-01-01", "2012-05-16", "2020-01-01"], dtype="datetime64[D]")
    months = growth.age_in_months(birth, measured)
    np.testing.assert_allclose(months[:2], [3652 / 30.4375, 0.0])
    assert np.isnan(months[2])
