//! Numbers as the reports, plans and tool results print them.

use af_measure::MetricSummary;

/// Every run's value of a metric: `100, 100, 100` (`not measured` for a run whose journal had
/// no call the metric selects).
pub fn fmt_values(m: &MetricSummary) -> String {
    m.values.iter().map(|v| fmt_opt(*v)).collect::<Vec<_>>().join(", ")
}

/// A value, or `not measured`.
pub fn fmt_opt(v: Option<f64>) -> String {
    v.map_or_else(|| "not measured".to_owned(), fmt_num)
}

/// `10`, `2.5`.
pub fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 { format!("{}", v as i64) } else { format!("{v:.2}") }
}
