//! Who holds the VIP, from looks at one edge after another (pure): a look is not atomic, so two holders count only
//! when an overlap is proven.

/// The holders from successive `look`s (each lists the holding edges in the order it looked at them).
///
/// Seeing A, then B, proves no overlap by itself: A may have dropped the address before B added it, between the two
/// looks (spawning `ip` per edge is slow on a loaded machine). Two holders are reported only when an edge seen before
/// another one still holds the address at the next look; otherwise the newer look stands (at most four looks).
pub fn holders(mut look: impl FnMut() -> Vec<String>) -> Vec<String> {
    let mut seen = look();
    for _ in 0..3 {
        if seen.len() <= 1 {
            return seen;
        }
        let again = look();
        if seen[..seen.len() - 1].iter().any(|e| again.contains(e)) {
            return seen;
        }
        seen = again;
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_only_when_proven() {
        type Case<'a> = (&'a str, &'a [&'a [&'a str]], &'a [&'a str]);
        let cases: &[Case] = &[
            ("nobody", &[&[]], &[]),
            ("one holder, one look", &[&["e1"], &["e2"]], &["e1"]),
            ("hand-over between looks", &[&["e1", "e2"], &["e2"]], &["e2"]),
            (
                "the earlier one still holds: overlap",
                &[&["e1", "e2"], &["e1"]],
                &["e1", "e2"],
            ),
            ("both still hold", &[&["e1", "e2"], &["e1", "e2"]], &["e1", "e2"]),
            (
                "only the later one seen again",
                &[&["e1", "e2"], &["e2", "e3"], &["e3"]],
                &["e3"],
            ),
            (
                "moving on every look",
                &[&["a", "b"], &["b", "c"], &["c", "d"], &["d", "e"]],
                &["d", "e"],
            ),
        ];
        for (name, looks, want) in cases {
            let mut i = 0;
            let got = holders(|| {
                let l = looks
                    .get(i)
                    .or(looks.last())
                    .map(|l| l.iter().map(|s| s.to_string()).collect());
                i += 1;
                l.unwrap_or_default()
            });
            assert_eq!(got, want.iter().map(|s| s.to_string()).collect::<Vec<_>>(), "{name}");
        }
    }
}
