//! A unified line diff (pure), for showing what `edit-config` is about to store. Inputs are small documents, so a
//! plain longest-common-subsequence table is enough.

/// Lines of context around each change.
const CONTEXT: usize = 3;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Line<'a> {
    Same(&'a str),
    Removed(&'a str),
    Added(&'a str),
}

/// `diff -u` style text from `old` to `new` (labels on the `---`/`+++` lines); None when they are equal.
pub fn unified(old_label: &str, new_label: &str, old: &str, new: &str) -> Option<String> {
    let lines = edit_script(&old.lines().collect::<Vec<_>>(), &new.lines().collect::<Vec<_>>());
    if lines.iter().all(|l| matches!(l, Line::Same(_))) {
        return None;
    }
    let mut out = vec![format!("--- {old_label}"), format!("+++ {new_label}")];
    let changed: Vec<usize> = (0..lines.len())
        .filter(|&i| !matches!(lines[i], Line::Same(_)))
        .collect();
    // Group changes whose context windows touch into hunks [start, end).
    let mut hunks: Vec<(usize, usize)> = Vec::new();
    for &i in &changed {
        let (start, end) = (i.saturating_sub(CONTEXT), (i + CONTEXT + 1).min(lines.len()));
        match hunks.last_mut() {
            Some(last) if start <= last.1 => last.1 = end,
            _ => hunks.push((start, end)),
        }
    }
    for (start, end) in hunks {
        // Line numbers (1-based) where the hunk starts in each file.
        let old_before = lines[..start].iter().filter(|l| !matches!(l, Line::Added(_))).count();
        let new_before = lines[..start].iter().filter(|l| !matches!(l, Line::Removed(_))).count();
        let body = &lines[start..end];
        let old_len = body.iter().filter(|l| !matches!(l, Line::Added(_))).count();
        let new_len = body.iter().filter(|l| !matches!(l, Line::Removed(_))).count();
        out.push(format!(
            "@@ -{},{old_len} +{},{new_len} @@",
            old_before + usize::from(old_len > 0),
            new_before + usize::from(new_len > 0)
        ));
        out.extend(body.iter().map(|l| match l {
            Line::Same(t) => format!(" {t}"),
            Line::Removed(t) => format!("-{t}"),
            Line::Added(t) => format!("+{t}"),
        }));
    }
    Some(out.join("\n"))
}

/// The shortest edit script by longest common subsequence.
fn edit_script<'a>(a: &[&'a str], b: &[&'a str]) -> Vec<Line<'a>> {
    // lcs[i][j]: length of the LCS of a[i..] and b[j..].
    let mut lcs = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::with_capacity(a.len() + b.len()));
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push(Line::Same(a[i]));
            (i, j) = (i + 1, j + 1);
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            // Removals before additions, as diff -u prints a changed line.
            out.push(Line::Removed(a[i]));
            i += 1;
        } else {
            out.push(Line::Added(b[j]));
            j += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::unified;

    #[test]
    fn equal_texts_have_no_diff() {
        assert_eq!(unified("a", "b", "x\ny\n", "x\ny\n"), None);
    }

    #[test]
    fn one_changed_line_with_context() {
        let old = "a\nb\nc\nd\ne\nf\ng\nh\n";
        let new = "a\nb\nc\nd\nE\nf\ng\nh\n";
        let d = unified("old", "new", old, new).expect("a diff");
        let expected = "--- old\n+++ new\n@@ -2,7 +2,7 @@\n b\n c\n d\n-e\n+E\n f\n g\n h";
        assert_eq!(d, expected);
    }

    #[test]
    fn far_apart_changes_make_two_hunks_and_additions_count() {
        let old: String = (1..=20).map(|i| format!("{i}\n")).collect();
        let new = old.replacen("2\n", "two\n", 1).replacen("19\n", "19\nnew\n", 1);
        let d = unified("o", "n", &old, &new).expect("a diff");
        assert_eq!(d.matches("@@ ").count(), 2, "{d}");
        assert!(d.contains("-2\n+two"), "{d}");
        assert!(d.contains("@@ -17,4 +17,5 @@"), "{d}");
        assert!(d.contains("+new"), "{d}");
    }

    #[test]
    fn from_and_to_empty() {
        assert_eq!(
            unified("o", "n", "", "x\n").expect("diff"),
            "--- o\n+++ n\n@@ -0,0 +1,1 @@\n+x"
        );
        assert_eq!(
            unified("o", "n", "x\n", "").expect("diff"),
            "--- o\n+++ n\n@@ -1,1 +0,0 @@\n-x"
        );
    }
}
