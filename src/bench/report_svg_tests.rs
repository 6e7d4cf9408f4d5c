//! Table tests of the run SVG: scale, markers where the phases say, escaping, empty runs, and a real XML parse.

use std::collections::BTreeMap;

use quick_xml::events::Event;
use quick_xml::Reader;

type Element = (String, BTreeMap<String, String>);

/// Every element of `svg` (name and unescaped attributes, in document order) and its text, after a strict parse
/// that fails on unbalanced or mismatched tags and bad escapes.
fn parse(svg: &str) -> (Vec<Element>, String) {
    let mut reader = Reader::from_str(svg);
    reader.config_mut().check_end_names = true;
    let (mut elements, mut text, mut depth) = (Vec::new(), String::new(), 0i32);
    loop {
        let event = reader
            .read_event()
            .unwrap_or_else(|e| panic!("not well-formed at {}: {e}", reader.buffer_position()));
        let start = match &event {
            Event::Start(e) | Event::Empty(e) => Some(e.clone()),
            _ => None,
        };
        if let Some(e) = start {
            let attrs = e
                .attributes()
                .map(|a| {
                    let a = a.expect("well-formed attribute");
                    let value = a.unescape_value().expect("escaped attribute").into_owned();
                    (String::from_utf8_lossy(a.key.as_ref()).into_owned(), value)
                })
                .collect();
            elements.push((String::from_utf8_lossy(e.name().as_ref()).into_owned(), attrs));
        }
        match event {
            Event::Start(_) => depth += 1,
            Event::End(_) => depth -= 1,
            Event::Text(t) => text.push_str(&t.unescape().expect("escaped text")),
            Event::Eof => break,
            _ => {}
        }
    }
    assert_eq!(depth, 0, "every element closed");
    (elements, text)
}

/// The x of each marker line, by its `data-marker` name.
fn marker_xs(svg: &str) -> BTreeMap<String, f64> {
    parse(svg)
        .0
        .into_iter()
        .filter(|(name, a)| name == "line" && a.get("class").map(String::as_str) == Some("marker"))
        .map(|(_, a)| {
            assert_eq!(a["x1"], a["x2"], "vertical");
            (a["data-marker"].clone(), a["x1"].parse().expect("number"))
        })
        .collect()
}

/// Writes every 20 ms from `from` to `to` ms, skipping the gap.
fn writes(from: i32, to: i32, gap: (i32, i32)) -> Vec<f64> {
    (from..=to)
        .step_by(20)
        .filter(|t| *t <= gap.0 || *t >= gap.1)
        .map(f64::from)
        .collect()
}

fn run() -> super::Timeline {
    super::Timeline {
        title: "primary-crash run 1".into(),
        acked_ms: writes(-1000, 3000, (-20, 1500)),
        gap_ms: Some((-20.0, 1500.0)),
        phases: super::Phases {
            detect_ms: Some(1000.0),
            elect_ms: Some(1100.0),
            promote_ms: Some(1300.0),
            route_ms: Some(1400.0),
            vip_ms: None,
        },
    }
}

#[test]
fn nice_steps() {
    for (raw, step) in [
        (0.0, 1.0),
        (0.5, 1.0),
        (1.0, 1.0),
        (3.0, 5.0),
        (400.0, 500.0),
        (500.0, 500.0),
        (1500.0, 2000.0),
        (7000.0, 10000.0),
    ] {
        assert_eq!(super::nice_step(raw), step, "{raw}");
    }
}

#[test]
fn the_axis_covers_writes_gap_fault_and_phases_in_whole_ticks() {
    let s = super::scale_of(&run());
    assert_eq!((s.lo, s.hi, s.step), (-1000.0, 3000.0, 500.0));
    // The plot is 1000 px wide from x = 80: 4 s over 1000 px.
    assert_eq!((s.x(-1000.0), s.x(0.0), s.x(3000.0)), (80.0, 330.0, 1080.0));
    // A phase past the last write widens the axis (5.2 s: ticks of 1 s).
    let mut late = run();
    late.phases.vip_ms = Some(4200.0);
    let s = super::scale_of(&late);
    assert_eq!((s.lo, s.hi, s.step), (-1000.0, 5000.0, 1000.0));
    // Nothing but the fault: one tick of 1 ms.
    let s = super::scale_of(&super::Timeline::default());
    assert_eq!((s.lo, s.hi), (0.0, 1.0));
}

#[test]
fn markers_sit_where_the_phases_say() {
    let xs = marker_xs(&super::render(&run()));
    let want: BTreeMap<String, f64> = [
        ("fault", 330.0),
        ("detect", 580.0),
        ("elect", 605.0),
        ("promote", 655.0),
        ("route", 680.0),
    ]
    .into_iter()
    .map(|(n, x)| (n.to_string(), x))
    .collect();
    assert_eq!(xs, want, "no VIP marker: that phase did not happen");
    let mut with_vip = run();
    with_vip.phases.vip_ms = Some(2000.0);
    assert_eq!(marker_xs(&super::render(&with_vip))["VIP"], 830.0);
}

#[test]
fn the_gap_is_shaded_and_labelled() {
    let svg = super::render(&run());
    let (elements, text) = parse(&svg);
    let gap = elements
        .iter()
        .find(|(n, a)| n == "rect" && a.get("class").map(String::as_str) == Some("gap"))
        .expect("a gap rectangle");
    // -20 ms .. 1500 ms: 325.0 .. 705.0.
    assert_eq!((gap.1["x"].as_str(), gap.1["width"].as_str()), ("325.0", "380.0"));
    assert!(text.contains("write gap 1520 ms"), "{text}");
    for label in [
        "detect 1000 ms",
        "elect 1100 ms",
        "promote 1300 ms",
        "route 1400 ms",
        "time from the fault (s)",
    ] {
        assert!(text.contains(label), "{label}");
    }
    // One step line with two points per write.
    let writes = elements.iter().find(|(n, _)| n == "polyline").expect("the writes");
    assert_eq!(writes.1["points"].split(' ').count(), 2 * run().acked_ms.len());
}

#[test]
fn close_markers_get_separate_label_rows() {
    let (elements, _) = parse(&super::render(&run()));
    let rows: Vec<&str> = elements
        .iter()
        .filter(|(n, a)| n == "text" && a.get("class").map(String::as_str) == Some("marker-label"))
        .map(|(_, a)| a["y"].as_str())
        .collect();
    // detect (x 580), elect (605), promote (655), route (680): labels ~100 px wide, so no two neighbours share one.
    assert_eq!(rows.len(), 5);
    for pair in rows[1..].windows(2) {
        assert_ne!(pair[0], pair[1], "{rows:?}");
    }
}

#[test]
fn names_are_escaped() {
    let mut t = run();
    t.title = r#"db1 <script>"&'"#.into();
    let svg = super::render(&t);
    assert!(
        svg.contains("<title>db1 &lt;script&gt;&quot;&amp;&#39;</title>"),
        "{svg}"
    );
    assert!(!svg.contains("<script>"));
    let (_, text) = parse(&svg);
    assert!(text.contains(r#"db1 <script>"&'"#));
    assert_eq!(super::escape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&#39;");
}

#[test]
fn an_empty_run_still_draws_axes_and_the_fault() {
    let t = super::Timeline {
        title: "nothing".into(),
        ..Default::default()
    };
    let svg = super::render(&t);
    let (elements, text) = parse(&svg);
    assert!(text.contains("no acknowledged writes"));
    assert!(!elements.iter().any(|(n, _)| n == "polyline"));
    assert_eq!(marker_xs(&svg).keys().collect::<Vec<_>>(), ["fault"]);
    // Non-finite times are left out rather than drawn at NaN.
    let mut odd = run();
    odd.phases.detect_ms = Some(f64::NAN);
    odd.gap_ms = Some((f64::INFINITY, 1.0));
    let svg = super::render(&odd);
    assert!(!svg.contains("NaN") && !svg.contains("inf"));
    assert!(!marker_xs(&svg).contains_key("detect"));
}

#[test]
fn tick_labels_are_seconds() {
    for (ms, step, label) in [
        (0.0, 500.0, "0.0"),
        (-1000.0, 500.0, "-1.0"),
        (1500.0, 500.0, "1.5"),
        (2000.0, 1000.0, "2"),
        (-0.0, 1000.0, "0"),
        (40.0, 20.0, "0.04"),
        (3.0, 1.0, "0.003"),
    ] {
        assert_eq!(super::seconds(ms, step), label, "{ms} {step}");
    }
}
