//! Chart data from a run's journals and snapshot, and their inline SVG.

use std::fmt::Write;
use std::path::Path;

use af_agent::WorkResult;
use af_analyze::Capture;
use af_snapshot::{Bodies, CallerSpec, ReadOptions, Templater, read_all};

/// One line on a chart.
#[derive(Clone, Debug, Default)]
pub struct Series {
    /// Legend.
    pub name: String,
    /// `(x, y)`, x in seconds from the first arrival.
    pub points: Vec<(f64, f64)>,
}

/// Everything the HTML report draws.
#[derive(Clone, Debug, Default)]
pub struct Charts {
    /// Arrivals per 50 ms: baseline run 1, confirm run 1.
    pub arrivals: Vec<Series>,
    /// Calls in flight over time (per caller, the busiest): baseline run 1, confirm run 1.
    pub inflight: Vec<Series>,
    /// The snapshot: calls and errors per bucket.
    pub timeline: Vec<Series>,
    /// The span from the first to the last error of the finding's status (where a burst is, when
    /// the errors cluster), seconds from the snapshot's start.
    pub burst: Option<(f64, f64)>,
    /// Problems reading inputs (said in the report, never hidden).
    pub notes: Vec<String>,
}

/// What the charts draw from, read once by the caller: the first baseline and confirm runs'
/// journals and the snapshot, as captures under the harness's own templates and caller key —
/// the ones the metric was computed with — so a chart cannot disagree with the numbers.
#[derive(Debug, Default)]
pub struct Inputs {
    /// Baseline run 1, the finding's endpoint only.
    pub baseline: Option<Capture>,
    /// Confirm run 1 of the shown attempt, the finding's endpoint only.
    pub confirm: Option<Capture>,
    /// The snapshot the plan was made from.
    pub snapshot: Option<Capture>,
    /// What could not be read.
    pub notes: Vec<String>,
}

impl Inputs {
    /// Reads what `r` names.
    pub fn load(r: &WorkResult) -> Self {
        let mut out = Inputs::default();
        let read = |p: &Path| {
            read_all(p, ReadOptions { lenient: true, bodies: Bodies::Elide })
                .map(|(ex, _)| ex)
                .map_err(|e| format!("{}: {e}", p.display()))
        };
        let recorded = match r.plan.harness_inputs.as_ref().map(|h| read(&h.snapshot)) {
            Some(Ok(ex)) => ex,
            Some(Err(e)) => {
                out.notes.push(e);
                Vec::new()
            }
            None => Vec::new(),
        };
        // The harness's templates and caller key, as `af measure` read the journals.
        let mock = r.plan.harness.as_ref().map(|h| h.mock.clone()).unwrap_or_default();
        let templater = mock.templater(&recorded).unwrap_or_else(|e| {
            out.notes.push(format!("the harness's templates: {e}; charts use learned ones"));
            Templater::default().learning_from(&recorded)
        });
        let caller: CallerSpec = mock.caller_key.parse().unwrap_or_else(|e| {
            out.notes.push(format!("the harness's caller key: {e}; charts use auto"));
            CallerSpec::Auto
        });
        let ep = r.plan.finding.as_ref().and_then(|f| f.endpoint.as_deref());
        let capture = |ex: &[af_snapshot::Exchange], only: Option<&str>| {
            let mut cap = Capture::from_exchanges(ex, &templater, &caller);
            if let Some(ep) = only {
                let keep: Vec<u32> = cap
                    .endpoints
                    .iter()
                    .enumerate()
                    .filter(|(_, e)| af_snapshot::endpoint_matches(ep, &e.method, &e.template))
                    .map(|(i, _)| i as u32)
                    .collect();
                cap.calls.retain(|c| keep.contains(&c.endpoint));
            }
            cap
        };
        if !recorded.is_empty() {
            out.snapshot = Some(capture(&recorded, None));
        }
        let journal = |m: Option<&af_agent::Measured>| {
            m.and_then(|m| m.runs.first()).map(|x| x.journal.clone())
        };
        let confirm = r.shown_attempt().and_then(|a| a.confirm.as_ref());
        for (slot, j) in [(0, journal(r.plan.baseline.as_ref())), (1, journal(confirm))] {
            let Some(j) = j else { continue };
            match read(Path::new(&j)) {
                Ok(ex) => {
                    let cap = Some(capture(&ex, ep));
                    if slot == 0 { out.baseline = cap } else { out.confirm = cap }
                }
                Err(e) => out.notes.push(e),
            }
        }
        out
    }
}

fn arrivals(cap: &Capture, name: &str) -> Series {
    let Some(t0) = cap.calls.iter().map(|c| c.start).min() else {
        return Series { name: name.into(), points: vec![] };
    };
    let bucket = 50_000_000i64;
    let n = cap.calls.iter().map(|c| ((c.start - t0) / bucket) as usize).max().unwrap_or(0) + 1;
    let mut counts = vec![0u32; n];
    for c in &cap.calls {
        counts[((c.start - t0) / bucket) as usize] += 1;
    }
    Series {
        name: name.into(),
        points: counts.iter().enumerate().map(|(i, &k)| (i as f64 * 0.05, f64::from(k))).collect(),
    }
}

/// The busiest caller's calls in flight over time: the step function whose peak is the
/// `peak_inflight{per="caller"}` metric (`af_analyze::concurrency`, the same sweep).
fn inflight(cap: &Capture, name: &str) -> Series {
    let mut by: std::collections::BTreeMap<u32, Vec<(i64, i64)>> = Default::default();
    for c in &cap.calls {
        by.entry(c.caller).or_default().push((c.start, c.end));
    }
    let Some(t0) = cap.calls.iter().map(|c| c.start).min() else {
        return Series { name: name.into(), points: vec![] };
    };
    let mut best: Vec<(f64, f64)> = Vec::new();
    let mut best_peak = None;
    for iv in by.into_values() {
        let steps = af_analyze::concurrency::inflight_steps(iv);
        let peak = steps.iter().map(|s| s.1).max().unwrap_or(0);
        if best_peak.is_some_and(|b| peak <= b) {
            continue;
        }
        best_peak = Some(peak);
        let mut pts = vec![(0.0, 0.0)];
        let mut prev = 0.0;
        for (t, n) in steps {
            let x = (t - t0) as f64 / 1e9;
            pts.push((x, prev));
            prev = n as f64;
            pts.push((x, prev));
        }
        best = pts;
    }
    Series { name: name.into(), points: best }
}

/// The charts of a result, from its [`Inputs`]: pure, so the report renders what it is given.
pub fn charts(r: &WorkResult, inputs: &Inputs) -> Charts {
    let mut out = Charts { notes: inputs.notes.clone(), ..Charts::default() };
    for (label, cap) in
        [("baseline (run 1)", &inputs.baseline), ("confirm (run 1)", &inputs.confirm)]
    {
        if let Some(cap) = cap {
            out.arrivals.push(arrivals(cap, label));
            out.inflight.push(inflight(cap, label));
        }
    }
    if let Some(cap) = &inputs.snapshot {
        let status = r.plan.finding.as_ref().and_then(|f| f.status);
        if let Some((t0, t1)) = cap.span() {
            let n = 60usize;
            let width = ((t1 - t0) / n as i64).max(1);
            let mut calls = vec![0u32; n + 1];
            let mut errs = vec![0u32; n + 1];
            let (mut e0, mut e1) = (i64::MAX, i64::MIN);
            for c in &cap.calls {
                let b = (((c.start - t0) / width) as usize).min(n);
                calls[b] += 1;
                if c.is_error() && status.is_none_or(|s| c.status == s) {
                    errs[b] += 1;
                    e0 = e0.min(c.start);
                    e1 = e1.max(c.start);
                }
            }
            let x = |i: usize| (i as i64 * width) as f64 / 1e9;
            out.timeline.push(Series {
                name: "calls".into(),
                points: calls.iter().enumerate().map(|(i, &k)| (x(i), f64::from(k))).collect(),
            });
            out.timeline.push(Series {
                name: "errors".into(),
                points: errs.iter().enumerate().map(|(i, &k)| (x(i), f64::from(k))).collect(),
            });
            if e0 <= e1 {
                out.burst = Some(((e0 - t0) as f64 / 1e9, (e1 - t0) as f64 / 1e9));
            }
        }
    }
    out
}

const COLORS: [&str; 2] = ["#c0392b", "#2874a6"];

/// A line chart as an inline `<svg>`; `band` shades an x-range.
pub(crate) fn svg(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    band: Option<(f64, f64)>,
) -> String {
    let (w, h, l, r, t, b) = (720.0, 240.0, 56.0, 16.0, 28.0, 40.0);
    let xmax =
        series.iter().flat_map(|s| s.points.iter().map(|p| p.0)).fold(0.0f64, f64::max).max(1e-9);
    let ymax =
        series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).fold(0.0f64, f64::max).max(1.0);
    let sx = |x: f64| l + x / xmax * (w - l - r);
    let sy = |y: f64| h - b - y / ymax * (h - t - b);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img" aria-label="{}">"#,
        crate::escape::esc(title)
    );
    let _ = write!(
        s,
        r##"<rect x="0" y="0" width="{w}" height="{h}" fill="#fff"/><text x="{l}" y="18" font-size="13" font-weight="bold">{}</text>"##,
        crate::escape::esc(title)
    );
    if let Some((a, z)) = band {
        let _ = write!(
            s,
            r##"<rect x="{:.1}" y="{t}" width="{:.1}" height="{:.1}" fill="#f5b7b1" opacity="0.45"/><text x="{:.1}" y="{}" font-size="11" fill="#922b21">first → last error</text>"##,
            sx(a),
            (sx(z) - sx(a)).max(2.0),
            h - t - b,
            sx(a) + 2.0,
            t + 12.0
        );
    }
    // Axes and ticks.
    let _ = write!(
        s,
        r##"<line x1="{l}" y1="{}" x2="{}" y2="{}" stroke="#333"/><line x1="{l}" y1="{t}" x2="{l}" y2="{}" stroke="#333"/>"##,
        h - b,
        w - r,
        h - b,
        h - b
    );
    for i in 0..=4 {
        let y = ymax * f64::from(i) / 4.0;
        let _ = write!(
            s,
            r##"<text x="{}" y="{:.1}" font-size="10" text-anchor="end">{}</text><line x1="{l}" x2="{}" y1="{:.1}" y2="{:.1}" stroke="#eee"/>"##,
            l - 4.0,
            sy(y) + 3.0,
            af_agent::format::fmt_num(y.round()),
            w - r,
            sy(y),
            sy(y)
        );
        let x = xmax * f64::from(i) / 4.0;
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{}" font-size="10" text-anchor="middle">{:.2}</text>"#,
            sx(x),
            h - b + 14.0,
            x
        );
    }
    let _ = write!(
        s,
        r#"<text x="{:.1}" y="{}" font-size="11" text-anchor="middle">{}</text>"#,
        (l + w - r) / 2.0,
        h - 6.0,
        crate::escape::esc(x_label)
    );
    let _ = write!(
        s,
        r#"<text x="12" y="{:.1}" font-size="11" transform="rotate(-90 12 {:.1})" text-anchor="middle">{}</text>"#,
        (t + h - b) / 2.0,
        (t + h - b) / 2.0,
        crate::escape::esc(y_label)
    );
    for (k, se) in series.iter().enumerate() {
        let c = COLORS[k % COLORS.len()];
        let pts: Vec<String> =
            se.points.iter().map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y))).collect();
        let _ = write!(
            s,
            r#"<polyline fill="none" stroke="{c}" stroke-width="1.6" points="{}"/>"#,
            pts.join(" ")
        );
        let lx = w - r - 200.0;
        let ly = t + 4.0 + 14.0 * k as f64;
        let _ = write!(
            s,
            r#"<rect x="{lx}" y="{ly}" width="10" height="10" fill="{c}"/><text x="{}" y="{}" font-size="11">{}</text>"#,
            lx + 14.0,
            ly + 9.0,
            crate::escape::esc(&se.name)
        );
    }
    s.push_str("</svg>");
    s
}
