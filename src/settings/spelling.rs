//! "Did you mean ...?": the known word nearest to a mistyped one (`--lisen` → `--listen`,
//! `relaod` → `reload`), for the messages about unknown flags, keys and subcommands.

/// The most edits (insert, delete or change one character) a typo may be from the word it
/// was meant to be. Two covers a swapped pair (`relaod`), the usual slip; more starts to
/// suggest unrelated words.
const MAX_EDITS: usize = 2;

/// The word of `known` closest to `typed`, if one is at most [`MAX_EDITS`] edits away and
/// nearer than `typed` is long (so that `-x` does not suggest `-h`); the first on a tie.
pub fn nearest<'a>(typed: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = MAX_EDITS.min(typed.chars().count().saturating_sub(1));
    known
        .into_iter()
        .map(|word| (edit_distance(typed, word), word))
        .filter(|(edits, _)| *edits <= limit)
        .min_by_key(|(edits, _)| *edits)
        .map(|(_, word)| word)
}

/// ` (did you mean "WORD"?)` for the word of `known` nearest to `typed`, or nothing.
pub fn did_you_mean<'a>(typed: &str, known: impl IntoIterator<Item = &'a str>) -> String {
    match nearest(typed, known) {
        Some(word) => format!(" (did you mean {word:?}?)"),
        None => String::new(),
    }
}

/// Levenshtein's distance: how many characters must be inserted, deleted or changed to turn
/// `a` into `b`, computed a row at a time (the classic dynamic programme).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    // `row[j]`: the distance from the part of `a` read so far to the first `j` chars of `b`.
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, a_char) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, b_char) in b.iter().enumerate() {
            let changed = diagonal + usize::from(a_char != *b_char);
            diagonal = row[j + 1];
            row[j + 1] = changed.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("listen", "lisen"), 1);
        assert_eq!(edit_distance("relaod", "reload"), 2);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("é", "e"), 1);
    }

    #[test]
    fn suggestions() {
        let subcommands = ["reload", "drain", "status", "demo"];
        assert_eq!(nearest("relaod", subcommands), Some("reload"));
        assert_eq!(nearest("statu", subcommands), Some("status"));
        assert_eq!(nearest("stray", subcommands), None);
        assert_eq!(nearest("x", ["y"]), None);
        assert_eq!(did_you_mean("--lisen", ["--listen"]), " (did you mean \"--listen\"?)");
        assert_eq!(did_you_mean("--frobnicate", ["--listen"]), "");
    }
}
