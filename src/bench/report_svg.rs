//! One failover run drawn as an SVG (pure): acknowledged writes over time, the write gap shaded, a vertical marker
//! for the fault and for each phase, a labelled time axis. No external assets, no script.

use std::fmt::Write as _;

use super::phases::Phases;

/// One run as the report draws it; every time is in milliseconds from the fault (negative: before it).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Timeline {
    /// Shown as the SVG's `<title>` (escaped).
    pub title: String,
    /// When each acknowledged write came back, in order.
    pub acked_ms: Vec<f64>,
    /// The write gap: the acknowledgement before the pause and the one that ended it.
    pub gap_ms: Option<(f64, f64)>,
    pub phases: Phases,
}

/// Canvas and plot area, in pixels.
pub const WIDTH: f64 = 1120.0;
pub const HEIGHT: f64 = 470.0;
pub const LEFT: f64 = 80.0;
pub const PLOT_WIDTH: f64 = 1000.0;
pub const TOP: f64 = 110.0;
pub const PLOT_HEIGHT: f64 = 280.0;
/// Rows of marker labels above the plot (labels that would overlap go one row down).
const LABEL_ROWS: usize = 4;
/// Rough width of one label character at 12 px (enough to keep labels apart).
const CHAR_PX: f64 = 7.0;

/// The colour of each marker: the fault, then the phases in [`Phases::named`] order.
const FAULT_COLOUR: &str = "#111111";
const PHASE_COLOURS: [&str; 5] = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b"];

/// The time axis: milliseconds `lo..hi` onto the plot's x range, with ticks every `step`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scale {
    pub lo: f64,
    pub hi: f64,
    pub step: f64,
}

impl Scale {
    /// The x pixel of `ms`.
    pub fn x(&self, ms: f64) -> f64 {
        LEFT + (ms - self.lo) / (self.hi - self.lo) * PLOT_WIDTH
    }
}

/// 1, 2 or 5 times a power of ten, the smallest at least `raw` (at least 1 ms).
fn nice_step(raw: f64) -> f64 {
    let raw = raw.max(1.0);
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw * 0.999_999)
        .unwrap_or(10.0 * magnitude)
}

/// The time axis of `t`: every write, the gap, the fault and the phases in view, about ten ticks, rounded out to
/// whole ticks.
pub fn scale_of(t: &Timeline) -> Scale {
    let times = t
        .acked_ms
        .iter()
        .copied()
        .chain(t.gap_ms.into_iter().flat_map(|(a, b)| [a, b]))
        .chain(t.phases.named().into_iter().filter_map(|(_, v)| v))
        .chain([0.0])
        .filter(|v| v.is_finite());
    let (lo, hi) = times.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let step = nice_step((hi - lo) / 10.0);
    let lo = (lo / step).floor() * step;
    let mut hi = (hi / step).ceil() * step;
    if hi <= lo {
        hi = lo + step;
    }
    Scale { lo, hi, step }
}

/// Text for SVG/HTML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A tick label: seconds with as many decimals as the step needs.
fn seconds(ms: f64, step: f64) -> String {
    let decimals = if step >= 1000.0 {
        0
    } else if step >= 100.0 {
        1
    } else if step >= 10.0 {
        2
    } else {
        3
    };
    // Rounded first, so that a sum of steps a hair below zero prints as "0", not "-0".
    let scale = 10f64.powi(decimals as i32);
    let s = (ms / 1000.0 * scale).round() / scale + 0.0;
    format!("{s:.decimals$}")
}

/// One vertical marker: its name (the `data-marker` attribute), label, time and colour.
struct Marker {
    name: &'static str,
    label: String,
    ms: f64,
    colour: &'static str,
}

fn markers(t: &Timeline) -> Vec<Marker> {
    let mut out = vec![Marker {
        name: "fault",
        label: "fault".into(),
        ms: 0.0,
        colour: FAULT_COLOUR,
    }];
    for ((name, ms), colour) in t.phases.named().into_iter().zip(PHASE_COLOURS) {
        if let Some(ms) = ms.filter(|v| v.is_finite()) {
            out.push(Marker {
                name,
                label: format!("{name} {ms:.0} ms"),
                ms,
                colour,
            });
        }
    }
    out.sort_by(|a, b| a.ms.total_cmp(&b.ms));
    out
}

/// The SVG of one run.
pub fn render(t: &Timeline) -> String {
    let scale = scale_of(t);
    let bottom = TOP + PLOT_HEIGHT;
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"##
    );
    let _ = write!(s, "<title>{}</title>", escape(&t.title));
    let _ = write!(
        s,
        r##"<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>"##
    );

    // The write gap, under everything else.
    if let Some((from, to)) = t.gap_ms.filter(|(a, b)| a.is_finite() && b.is_finite()) {
        let (x0, x1) = (scale.x(from), scale.x(to));
        let _ = write!(
            s,
            r##"<rect class="gap" x="{x0:.1}" y="{TOP}" width="{w:.1}" height="{PLOT_HEIGHT}" fill="#f8c4c4"/>"##,
            w = (x1 - x0).max(1.0)
        );
        let _ = write!(
            s,
            r##"<text class="gap-label" x="{x:.1}" y="{y}" text-anchor="middle" fill="#a02020">write gap {ms:.0} ms</text>"##,
            x = (x0 + x1) / 2.0,
            y = TOP + 16.0,
            ms = to - from
        );
    }

    // Time axis: grid lines, ticks and labels.
    let ticks = ((scale.hi - scale.lo) / scale.step).round() as usize;
    for i in 0..=ticks {
        let ms = scale.lo + i as f64 * scale.step;
        let x = scale.x(ms);
        let _ = write!(
            s,
            r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{bottom}" stroke="#e4e4e4"/><line x1="{x:.1}" y1="{bottom}" x2="{x:.1}" y2="{y2}" stroke="#444"/><text x="{x:.1}" y="{ty}" text-anchor="middle">{label}</text>"##,
            y2 = bottom + 5.0,
            ty = bottom + 19.0,
            label = seconds(ms, scale.step)
        );
    }
    let _ = write!(
        s,
        r##"<text x="{x}" y="{y}" text-anchor="middle">time from the fault (s)</text>"##,
        x = LEFT + PLOT_WIDTH / 2.0,
        y = bottom + 40.0
    );

    // Count axis.
    let n = t.acked_ms.len();
    let top_count = n.max(1) as f64;
    let y_of = |k: f64| bottom - k / top_count * PLOT_HEIGHT;
    let count_step = nice_step(top_count / 5.0);
    let mut k = 0.0;
    while k <= top_count + 0.5 {
        let y = y_of(k);
        let _ = write!(
            s,
            r##"<line x1="{x1}" y1="{y:.1}" x2="{LEFT}" y2="{y:.1}" stroke="#444"/><text x="{tx}" y="{ty:.1}" text-anchor="end">{k:.0}</text>"##,
            x1 = LEFT - 5.0,
            tx = LEFT - 8.0,
            ty = y + 4.0
        );
        k += count_step;
    }
    let _ = write!(
        s,
        r##"<text transform="translate(20 {y}) rotate(-90)" text-anchor="middle">acknowledged writes</text>"##,
        y = TOP + PLOT_HEIGHT / 2.0
    );
    let _ = write!(
        s,
        r##"<rect x="{LEFT}" y="{TOP}" width="{PLOT_WIDTH}" height="{PLOT_HEIGHT}" fill="none" stroke="#444"/>"##
    );

    // The writes: a step line, one rise per acknowledgement.
    if n == 0 {
        let _ = write!(
            s,
            r##"<text class="empty" x="{x}" y="{y}" text-anchor="middle" fill="#666">no acknowledged writes</text>"##,
            x = LEFT + PLOT_WIDTH / 2.0,
            y = TOP + PLOT_HEIGHT / 2.0
        );
    } else {
        let mut points = String::new();
        for (i, ms) in t.acked_ms.iter().enumerate() {
            let x = scale.x(*ms);
            let _ = write!(
                points,
                "{x:.1},{:.1} {x:.1},{:.1} ",
                y_of(i as f64),
                y_of(i as f64 + 1.0)
            );
        }
        let _ = write!(
            s,
            r##"<polyline class="writes" points="{}" fill="none" stroke="#1a5fb4" stroke-width="1.5"/>"##,
            points.trim_end()
        );
    }

    // Markers, their labels in rows so that neighbours do not overlap.
    let mut row_end = [f64::MIN; LABEL_ROWS];
    for m in markers(t) {
        let x = scale.x(m.ms);
        let width = m.label.chars().count() as f64 * CHAR_PX;
        let flip = x + 4.0 + width > WIDTH - 4.0;
        let (start, end) = if flip {
            (x - 4.0 - width, x)
        } else {
            (x, x + 4.0 + width)
        };
        let row = (0..LABEL_ROWS).find(|r| row_end[*r] < start).unwrap_or(LABEL_ROWS - 1);
        row_end[row] = end + 6.0;
        let ly = 42.0 + row as f64 * 16.0;
        let (tx, anchor) = if flip { (x - 4.0, "end") } else { (x + 4.0, "start") };
        let _ = write!(
            s,
            r##"<line class="marker" data-marker="{name}" x1="{x:.1}" y1="{y1}" x2="{x:.1}" y2="{bottom}" stroke="{c}" stroke-width="1.5" stroke-dasharray="{dash}"/><text class="marker-label" x="{tx:.1}" y="{ly}" text-anchor="{anchor}" fill="{c}">{label}</text>"##,
            name = m.name,
            y1 = ly - 10.0,
            c = m.colour,
            dash = if m.name == "fault" { "none" } else { "5 3" },
            label = escape(&m.label)
        );
    }

    // Legend.
    let ly = bottom + 62.0;
    let _ = write!(
        s,
        r##"<line x1="{LEFT}" y1="{y}" x2="{x2}" y2="{y}" stroke="#1a5fb4" stroke-width="1.5"/><text x="{tx}" y="{ly}">acknowledged writes (cumulative)</text><rect x="{rx}" y="{ry}" width="14" height="10" fill="#f8c4c4"/><text x="{gx}" y="{ly}">write gap</text><text x="{nx}" y="{ly}" fill="#444">dashed: phases from the hosts' logs</text>"##,
        y = ly - 4.0,
        x2 = LEFT + 24.0,
        tx = LEFT + 30.0,
        rx = LEFT + 260.0,
        ry = ly - 9.0,
        gx = LEFT + 280.0,
        nx = LEFT + 370.0
    );
    s.push_str("</svg>");
    s
}

#[cfg(test)]
#[path = "report_svg_tests.rs"]
mod tests;
