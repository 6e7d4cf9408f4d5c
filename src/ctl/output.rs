//! Plain-text tables and JSON printing for ctl output.

use serde::Serialize;

/// [`table`] with one row per item of `items`, made by `row`.
pub fn table_of<T>(headers: &[&str], items: &[T], row: impl Fn(&T) -> Vec<String>) -> String {
    let rows: Vec<Vec<String>> = items.iter().map(row).collect();
    table(headers, &rows)
}

/// Renders rows under headers, columns padded to their widest cell.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        format!("| {} |", padded.join(" | "))
    };
    let rule = format!(
        "+{}+",
        widths.iter().map(|w| "-".repeat(w + 2)).collect::<Vec<_>>().join("+")
    );
    let mut out = vec![rule.clone(), line(headers.to_vec()), rule.clone()];
    for row in rows {
        out.push(line(row.iter().map(String::as_str).collect()));
    }
    out.push(rule);
    out.join("\n")
}

/// Asks `question [y/N]` on stderr and reads the answer from stdin (anything but y/yes is no).
pub fn confirm(question: &str) -> anyhow::Result<bool> {
    eprint!("{question} [y/N] ");
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::stdin().lock(), &mut line)
        .map_err(|e| anyhow::anyhow!("reading the confirmation: {e}"))?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes"))
}

/// Prints a value as pretty JSON on stdout.
pub fn json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn table_pads_columns() {
        let t = super::table(&["A", "LONG"], &[vec!["xyz".into(), "1".into()]]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[1], "| A   | LONG |");
        assert_eq!(lines[3], "| xyz | 1    |");
        assert!(lines.iter().all(|l| l.len() == lines[0].len()));
    }
}
