//! Percentiles and medians, by sorting: the sample counts here are small
//! enough that anything cleverer would only be harder to check.

/// The value at quantile `q` (0.0..=1.0) of an ascending slice, by nearest
/// rank: the smallest sample such that at least `q` of all samples are ≤ it.
/// Returns 0 for an empty slice.
pub fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Median, minimum and maximum of `values` (which gets sorted), or `None`
/// for no values. With an even count the median is the mean of the middle two.
pub fn median_min_max(values: &mut [f64]) -> Option<(f64, f64, f64)> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let median = if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 };
    Some((median, values[0], values[n - 1]))
}
