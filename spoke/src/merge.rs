//! The deterministic three-way line merge used for concurrent context-document edits.
//!
//! `merge3(base, ours, theirs)` aligns `ours` and `theirs` to `base` by longest common subsequence of
//! lines and walks the stable and unstable chunks (the classic diff3 algorithm). A chunk changed on one
//! side only takes that side; identical changes are taken once; different changes to the same chunk keep
//! both sides between conflict markers. The result depends only on the three texts, so every replica
//! that folds the same ops in the same (HLC) order reaches the same document.

/// The first line of a conflict block.
pub const MARK_OURS: &str = "<<<<<<< current";
/// The separator line of a conflict block.
pub const MARK_SEP: &str = "=======";
/// The prefix of the last line of a conflict block (followed by the later edit's clock).
pub const MARK_THEIRS: &str = ">>>>>>> edit";

/// The outcome of a three-way merge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged {
    /// The merged document (with conflict blocks where both sides changed the same lines).
    pub text: String,
    /// How many conflict blocks were written.
    pub conflicts: usize,
}

/// Whether a document still holds a conflict block written by [`merge3`].
pub fn has_conflict_markers(text: &str) -> bool {
    let mut open = false;
    for line in text.lines() {
        if line == MARK_OURS {
            open = true;
        } else if open && line.starts_with(MARK_THEIRS) {
            return true;
        }
    }
    false
}

fn lines(s: &str) -> Vec<&str> {
    s.split_inclusive('\n').collect()
}

/// For each index of `a`, the index of `b` it is matched to by a longest common subsequence.
fn lcs_match(a: &[&str], b: &[&str]) -> Vec<Option<usize>> {
    let mut out = vec![None; a.len()];
    // Trim the common prefix and suffix: the common case for documents is a small edit.
    let mut pre = 0;
    while pre < a.len() && pre < b.len() && a[pre] == b[pre] {
        out[pre] = Some(pre);
        pre += 1;
    }
    let mut suf = 0;
    while suf < a.len() - pre && suf < b.len() - pre && a[a.len() - 1 - suf] == b[b.len() - 1 - suf]
    {
        out[a.len() - 1 - suf] = Some(b.len() - 1 - suf);
        suf += 1;
    }
    let am = &a[pre..a.len() - suf];
    let bm = &b[pre..b.len() - suf];
    let (n, m) = (am.len(), bm.len());
    if n == 0 || m == 0 {
        return out;
    }
    if n.saturating_mul(m) > 16_000_000 {
        // Too large to align exactly: treat the middle as replaced (both sides are still kept).
        return out;
    }
    // dp[i][j] = LCS length of am[i..] and bm[j..].
    let w = m + 1;
    let mut dp = vec![0u32; (n + 1) * w];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            dp[i * w + j] = if am[i] == bm[j] {
                dp[(i + 1) * w + j + 1] + 1
            } else {
                dp[(i + 1) * w + j].max(dp[i * w + j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    while i < n && j < m {
        if am[i] == bm[j] {
            out[pre + i] = Some(pre + j);
            i += 1;
            j += 1;
        } else if dp[(i + 1) * w + j] >= dp[i * w + j + 1] {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

fn push_block(out: &mut String, chunk: &[&str]) {
    for l in chunk {
        out.push_str(l);
    }
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
}

/// Three-way merges `ours` and `theirs`, both derived from `base`. `label` names the later edit in
/// conflict markers (the caller passes the edit's clock so markers are the same on every replica).
pub fn merge3(base: &str, ours: &str, theirs: &str, label: &str) -> Merged {
    if ours == theirs || theirs == base {
        return Merged {
            text: ours.to_owned(),
            conflicts: 0,
        };
    }
    if ours == base {
        return Merged {
            text: theirs.to_owned(),
            conflicts: 0,
        };
    }
    let o = lines(base);
    let a = lines(ours);
    let b = lines(theirs);
    let ma = lcs_match(&o, &a);
    let mb = lcs_match(&o, &b);
    let mut out = String::new();
    let mut conflicts = 0;
    let (mut i, mut ia, mut ib) = (0usize, 0usize, 0usize);
    loop {
        // Stable lines: base line i matched exactly at the current position of both sides.
        if i < o.len() && ma[i] == Some(ia) && mb[i] == Some(ib) {
            out.push_str(o[i]);
            i += 1;
            ia += 1;
            ib += 1;
            continue;
        }
        // Find the next base line matched on both sides; everything before it is one unstable chunk.
        let mut j = i;
        while j < o.len() && !(ma[j].is_some() && mb[j].is_some()) {
            j += 1;
        }
        let (ea, eb) = if j < o.len() {
            (ma[j].unwrap_or(a.len()), mb[j].unwrap_or(b.len()))
        } else {
            (a.len(), b.len())
        };
        let co = &o[i..j];
        let ca = &a[ia..ea.max(ia)];
        let cb = &b[ib..eb.max(ib)];
        if ca == co {
            cb.iter().for_each(|l| out.push_str(l));
        } else if cb == co || ca == cb {
            ca.iter().for_each(|l| out.push_str(l));
        } else {
            conflicts += 1;
            if !out.is_empty() && !out.ends_with('\n') {
                out.push('\n');
            }
            out.push_str(MARK_OURS);
            out.push('\n');
            push_block(&mut out, ca);
            out.push_str(MARK_SEP);
            out.push('\n');
            push_block(&mut out, cb);
            out.push_str(MARK_THEIRS);
            out.push(' ');
            out.push_str(label);
            out.push('\n');
        }
        if j >= o.len() {
            break;
        }
        i = j;
        ia = ea.max(ia);
        ib = eb.max(ib);
    }
    Merged {
        text: out,
        conflicts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_sided_and_identical_changes() {
        let base = "a\nb\nc\n";
        assert_eq!(merge3(base, "a\nB\nc\n", base, "x").text, "a\nB\nc\n");
        assert_eq!(merge3(base, base, "a\nb\nc\nd\n", "x").text, "a\nb\nc\nd\n");
        assert_eq!(
            merge3(base, "a\nB\nc\n", "a\nB\nc\n", "x").text,
            "a\nB\nc\n"
        );
    }

    #[test]
    fn disjoint_changes_merge_cleanly() {
        let base = "1\n2\n3\n4\n5\n";
        let m = merge3(base, "one\n2\n3\n4\n5\n", "1\n2\n3\n4\nfive\n", "x");
        assert_eq!(m.text, "one\n2\n3\n4\nfive\n");
        assert_eq!(m.conflicts, 0);
        let m = merge3("", "ours\n", "theirs\n", "h");
        assert_eq!(m.conflicts, 1);
    }

    #[test]
    fn overlapping_changes_keep_both_sides() {
        let base = "a\nb\nc\n";
        let m = merge3(base, "a\nX\nc\n", "a\nY\nc\n", "42.0@O");
        assert_eq!(m.conflicts, 1);
        assert_eq!(
            m.text,
            "a\n<<<<<<< current\nX\n=======\nY\n>>>>>>> edit 42.0@O\nc\n"
        );
        assert!(has_conflict_markers(&m.text));
        assert!(!has_conflict_markers("a\nb\n"));
    }

    #[test]
    fn missing_trailing_newline_is_kept_apart_from_markers() {
        let m = merge3("a", "b", "c", "h");
        assert_eq!(m.text, "<<<<<<< current\nb\n=======\nc\n>>>>>>> edit h\n");
    }
}
