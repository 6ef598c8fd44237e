"""The robustness metrics on hand-made accuracy tables."""
import pytest

from freqrobust import metrics

NAMES = ("a", "b")


def _table(rows):
  return {name: dict(zip(metrics.SEVERITIES, accs)) for name, accs in rows.items()}


def test_robust_accuracy_is_the_mean_over_all_sets():
  table = _table({"a": [90, 80, 70, 60, 50], "b": [100, 100, 100, 100, 100], "c": [0] * 5})
  assert metrics.robust_accuracy(table, NAMES) == pytest.approx((350 + 500) / 10)


def test_corruption_error_and_unnormalized_mce():
  table = _table({"a": [90, 80, 70, 60, 50], "b": [100, 90, 90, 90, 80]})
  assert metrics.corruption_error(table, "a") == pytest.approx(30.)
  assert metrics.corruption_error(table, "b") == pytest.approx(10.)
  assert metrics.mce_unnormalized(table, NAMES) == pytest.approx(20.)
  # Unnormalised mCE and "Robust." are two views of one table: mCE = 100 - Robust.
  assert metrics.mce_unnormalized(table, NAMES) == pytest.approx(
      100 - metrics.robust_accuracy(table, NAMES))


def test_relative_mce_is_100_for_the_baseline_itself_and_scales_with_errors():
  baseline = _table({"a": [90, 80, 70, 60, 50], "b": [100, 90, 90, 90, 80]})  # CE 30, 10
  better = _table({"a": [95, 90, 85, 80, 75], "b": [100, 95, 95, 95, 90]})  # CE 15, 5
  assert metrics.mce_relative(baseline, baseline, NAMES) == pytest.approx(100.)
  assert metrics.mce_relative(better, baseline, NAMES) == pytest.approx(50.)
  # A mean of per-corruption ratios, mean(30/30, 0/10), not the pooled (30 + 0) / (30 + 10).
  mixed = _table({"a": [90, 80, 70, 60, 50], "b": [100] * 5})
  assert metrics.mce_relative(mixed, baseline, NAMES) == pytest.approx(50.)


def test_relative_mce_is_the_mean_of_per_corruption_ratios_by_hand():
  # Hendrycks & Dietterich: CE_c^rel = sum_s E(c, s) / sum_s E_base(c, s), mCE = 100 mean_c.
  model = _table({"a": [80, 70, 60, 50, 40], "b": [95, 95, 90, 90, 80]})  # errors 200, 50
  base = _table({"a": [70, 60, 50, 40, 30], "b": [95] * 5})  # errors 250, 25
  by_hand = 100 * (200 / 250 + 50 / 25) / 2  # = 140
  pooled = 100 * (200 + 50) / (250 + 25)  # = 90.9: the old convention, below 100 here
  assert by_hand == pytest.approx(140.)
  assert metrics.mce_relative(model, base, NAMES) == pytest.approx(by_hand)
  assert abs(metrics.mce_relative(model, base, NAMES) - pooled) > 40
  # Only corruption "b" (where the baseline is nearly perfect) pushes the model above 100.
  assert metrics.mce_relative(model, base, ["a"]) == pytest.approx(80.)


def test_accuracy_by_severity_and_summary():
  table = _table({"a": [90, 80, 70, 60, 50], "b": [100, 90, 90, 90, 80]})
  assert metrics.accuracy_by_severity(table, NAMES) == pytest.approx(
      {1: 95., 2: 85., 3: 80., 4: 75., 5: 65.})
  summary = metrics.summarize(table, 99., NAMES)
  assert summary["mce_relative"] is None and summary["clean_accuracy"] == 99.
  assert summary["corruptions_averaged"] == 2
  assert set(metrics.CONVENTIONS) >= set(summary)


def test_missing_entries_say_what_is_missing():
  table = {"a": {1: 50., 2: 50.}}
  with pytest.raises(ValueError, match=r"lacks severities \[3, 4, 5\]"):
    metrics.robust_accuracy(table, ["a"])
  with pytest.raises(ValueError, match="No accuracies for corruption 'b'"):
    metrics.corruption_error(table, "b")
  perfect = _table({"a": [100] * 5})
  with pytest.raises(ValueError, match="undefined"):
    metrics.mce_relative(perfect, perfect, ["a"])
  # Undefined as soon as one corruption has no baseline error (its ratio has no denominator).
  with pytest.raises(ValueError, match=r"no error on \['a'\]"):
    metrics.mce_relative(_table({"a": [90] * 5, "b": [90] * 5}),
                         _table({"a": [100] * 5, "b": [50] * 5}), NAMES)


def test_hendrycks_relative_mce_measures_degradation_from_the_clean_error():
  # Relative CE_c = sum_s (E(c, s) - E_clean) / sum_s (E_base(c, s) - E_base_clean).
  base = _table({"a": [70, 60, 50, 40, 30], "b": [85] * 5})  # errors 250, 75; clean 90 -> 200, 25
  model = _table({"a": [80, 70, 60, 50, 40], "b": [80] * 5})  # errors 200, 100; clean 95 -> 175, 75
  by_hand = 100 * (175 / 200 + 75 / 25) / 2
  assert metrics.relative_mce_hd(model, 95., base, 90., NAMES) == pytest.approx(by_hand)
  assert metrics.relative_mce_hd(base, 90., base, 90., NAMES) == pytest.approx(100.)
  # Not the mCE against the baseline: that one ignores the clean errors.
  assert metrics.mce_relative(model, base, NAMES) == pytest.approx(100 * (200 / 250 + 100 / 75) / 2)
  # A model that is uniformly worse by its clean-error gap loses nothing more: 100.
  shifted = _table({n: [a - 5 for a in row.values()] for n, row in base.items()})
  assert metrics.relative_mce_hd(shifted, 85., base, 90., NAMES) == pytest.approx(100.)
  summary = metrics.summarize(model, 95., NAMES, base, 90.)
  assert summary["relative_mce_hd"] == pytest.approx(by_hand)
  assert metrics.summarize(model, 95., NAMES, base)["relative_mce_hd"] is None  # no clean acc.
  # Undefined where the baseline loses nothing under a corruption.
  assert metrics.baseline_without_degradation(base, 85., NAMES) == ["b"]
  with pytest.raises(ValueError, match=r"loses no accuracy on \['b'\]"):
    metrics.relative_mce_hd(model, 95., base, 85., NAMES)
  assert metrics.summarize(model, 95., NAMES, base, 85.)["relative_mce_hd"] is None


@pytest.mark.parametrize("k, n, lo, hi", [
    # Wilson score intervals as published (Newcombe 1998, Table I, method 3: 81/263, 15/148,
    # 0/20, 1/29) and the textbook 5/10.
    (81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611),
    (1, 29, 0.0061, 0.1718), (5, 10, 0.2366, 0.7634)])
def test_wilson_interval_matches_published_values(k, n, lo, hi):
  got = metrics.binomial_interval(k, n)
  assert got == pytest.approx((lo, hi), abs=6e-5)


@pytest.mark.parametrize("k, n, lo, hi", [
    # Clopper-Pearson exact intervals (Newcombe 1998, Table I, method 5).
    (81, 263, 0.2527, 0.3676), (15, 148, 0.0578, 0.1617), (0, 20, 0.0, 0.1684),
    (1, 29, 0.0009, 0.1776)])
def test_clopper_pearson_interval_matches_published_values(k, n, lo, hi):
  got = metrics.binomial_interval(k, n, method="clopper_pearson")
  assert got == pytest.approx((lo, hi), abs=6e-5)


def test_binomial_interval_contains_the_estimate_and_narrows_with_n():
  lo, hi = metrics.binomial_interval(676, 1000)
  assert lo < 0.676 < hi and 0.025 < hi - lo < 0.06  # About +-2.9 points at 1000 images.
  lo2, hi2 = metrics.binomial_interval(6760, 10000)
  assert hi2 - lo2 < (hi - lo) / 3
  assert metrics.accuracy_interval(67.6, 1000) == pytest.approx((100 * lo, 100 * hi))
  lo90, hi90 = metrics.binomial_interval(676, 1000, confidence=0.9)
  assert lo < lo90 and hi90 < hi
  with pytest.raises(ValueError, match="correct <= n"):
    metrics.binomial_interval(5, 4)
  with pytest.raises(ValueError, match="method"):
    metrics.binomial_interval(1, 4, method="wald")
