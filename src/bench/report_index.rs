//! The HTML pages of `bench failover --report` (pure): `index.html` with the summary tables the bench prints and a
//! link to every run, and one page per run around its SVG. Self-contained: inline CSS, no script, no assets.

use std::fmt::Write as _;

use super::report_svg::escape;

/// A table as the bench prints it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    pub caption: String,
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// A table from the headers and rows the terminal output uses.
    pub fn new(caption: &str, headers: &[&str], rows: Vec<Vec<String>>) -> Table {
        Table {
            caption: caption.to_string(),
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows,
        }
    }
}

/// One run in the index: its page and its numbers (the run table's cells after the name).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunLink {
    pub href: String,
    pub name: String,
    pub cells: Vec<String>,
}

const STYLE: &str =
    "body{font-family:sans-serif;margin:24px;color:#111}table{border-collapse:collapse;margin:8px 0 20px}\
th,td{border:1px solid #bbb;padding:4px 8px;text-align:left;white-space:nowrap}th{background:#eee}caption{text-align:left;\
font-weight:bold;padding:4px 0}p.context{color:#444}";

fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title><style>{STYLE}</style>\
         </head><body><h1>{t}</h1>{body}</body></html>\n",
        t = escape(title)
    )
}

fn table_html(out: &mut String, t: &Table, first_cells: Option<&[String]>) {
    let _ = write!(out, "<table><caption>{}</caption><tr>", escape(&t.caption));
    for h in &t.headers {
        let _ = write!(out, "<th>{}</th>", escape(h));
    }
    out.push_str("</tr>");
    for (i, row) in t.rows.iter().enumerate() {
        out.push_str("<tr>");
        // A first cell given as raw HTML (a link built here, already escaped).
        if let Some(first) = first_cells.and_then(|f| f.get(i)) {
            let _ = write!(out, "<td>{first}</td>");
        }
        for c in row {
            let _ = write!(out, "<td>{}</td>", escape(c));
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
}

/// `index.html`: the context lines, the summary tables, then one row per run linking its page.
pub fn index_html(
    title: &str,
    context: &[String],
    summary: &[Table],
    run_headers: &[&str],
    runs: &[RunLink],
) -> String {
    let mut body = String::new();
    for line in context {
        let _ = write!(body, "<p class=\"context\">{}</p>", escape(line));
    }
    for t in summary {
        table_html(&mut body, t, None);
    }
    if runs.is_empty() {
        body.push_str("<p>No runs.</p>");
    } else {
        let links: Vec<String> = runs
            .iter()
            .map(|r| format!("<a href=\"{}\">{}</a>", escape(&r.href), escape(&r.name)))
            .collect();
        let table = Table {
            caption: "runs (each links its timeline)".into(),
            headers: run_headers.iter().map(|h| h.to_string()).collect(),
            rows: runs.iter().map(|r| r.cells.clone()).collect(),
        };
        table_html(&mut body, &table, Some(&links));
    }
    page(title, &body)
}

/// A run's page: a link back to the index, the SVG inline, then the run's numbers.
pub fn run_html(title: &str, svg: &str, facts: &[(String, String)]) -> String {
    let mut body = String::from("<p><a href=\"index.html\">&larr; all runs</a></p>");
    body.push_str(svg);
    let table = Table {
        caption: "this run".into(),
        headers: vec!["what".into(), "value".into()],
        rows: facts.iter().map(|(k, v)| vec![k.clone(), v.clone()]).collect(),
    };
    table_html(&mut body, &table, None);
    page(title, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_has_the_summary_and_a_link_per_run() {
        let summary = Table::new(
            "summary",
            &["scenario", "gap p50 ms"],
            vec![vec!["PrimaryCrash".into(), "2140".into()]],
        );
        let runs = vec![
            RunLink {
                href: "run-01-primary-crash.html".into(),
                name: "primary-crash 1".into(),
                cells: vec!["2140".into()],
            },
            RunLink {
                href: "run-02-a&b.html".into(),
                name: "<b>".into(),
                cells: vec!["x<y".into()],
            },
        ];
        let html = index_html(
            "pgha bench failover",
            &["replication: async".into()],
            &[summary],
            &["run", "gap ms"],
            &runs,
        );
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains("<th>scenario</th><th>gap p50 ms</th>"));
        assert!(html.contains("<td>PrimaryCrash</td><td>2140</td>"));
        assert!(html.contains("<td><a href=\"run-01-primary-crash.html\">primary-crash 1</a></td><td>2140</td>"));
        // Names, links and cells are escaped.
        assert!(html.contains("<a href=\"run-02-a&amp;b.html\">&lt;b&gt;</a></td><td>x&lt;y</td>"));
        assert!(html.contains("<p class=\"context\">replication: async</p>"));
        // No script, no outside asset.
        assert!(!html.contains("<script") && !html.contains("src=") && !html.contains("http"));
    }

    #[test]
    fn an_index_without_runs_says_so() {
        let html = index_html("t", &[], &[], &["run"], &[]);
        assert!(html.contains("<p>No runs.</p>"));
        assert!(!html.contains("<table>"));
    }

    #[test]
    fn run_page_embeds_the_svg_and_the_facts() {
        let html = run_html(
            "switchover 1 & more",
            "<svg></svg>",
            &[("new leader".into(), "db2".into())],
        );
        assert!(html.contains("<title>switchover 1 &amp; more</title>"));
        assert!(html.contains("<svg></svg>"));
        assert!(html.contains("<td>new leader</td><td>db2</td>"));
        assert!(html.contains("href=\"index.html\""));
    }
}
