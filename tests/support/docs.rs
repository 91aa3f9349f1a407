//! Fenced blocks read out of the docs, so a test runs a recipe as a reader pastes it.

/// The first fenced block with info string `info` (```` ```sh ````, ```` ```text ````, ...) that
/// opens after the first occurrence of `marker` in `doc` (a heading, or the words that
/// introduce the block), without its fences.
///
/// A block inside a list item has its fences indented like the item's text; that indentation,
/// and only that, is taken off every line, so the block reads as it would be pasted.
///
/// Panics naming `marker` when the marker, or a block after it, is missing.
pub fn block(doc: &str, marker: &str, info: &str) -> String {
    let at = doc.find(marker).unwrap_or_else(|| panic!("the doc has no {marker:?}"));
    blocks(doc, info)
        .into_iter()
        .find(|(fence, _)| *fence >= at + marker.len())
        .map(|(_, body)| body)
        .unwrap_or_else(|| panic!("the doc has no ```{info} block after {marker:?}"))
}

/// Every fenced block with info string `info` whose first line is `first_line`, in the order
/// of `doc`, as [`block`] returns them (the first line included).
///
/// Panics naming `first_line` when there is none.
pub fn blocks_opening_with(doc: &str, info: &str, first_line: &str) -> Vec<String> {
    let found: Vec<String> = blocks(doc, info)
        .into_iter()
        .map(|(_, body)| body)
        .filter(|body| body.lines().next() == Some(first_line))
        .collect();
    assert!(!found.is_empty(), "the doc has no ```{info} block opening with {first_line:?}");
    found
}

/// Every ```INFO block of `doc` as (byte offset of its opening fence, its dedented lines).
fn blocks(doc: &str, info: &str) -> Vec<(usize, String)> {
    let opening = format!("```{info}");
    let mut found = Vec::new();
    let mut offset = 0;
    let mut lines = doc.split_inclusive('\n');
    while let Some(line) = lines.next() {
        let fence = offset;
        offset += line.len();
        if line.trim() != opening {
            continue;
        }
        let indent = &line[..line.len() - line.trim_start().len()];
        let mut body = String::new();
        for line in lines.by_ref() {
            offset += line.len();
            if line.trim_start().starts_with("```") {
                break;
            }
            body.push_str(line.strip_prefix(indent).unwrap_or(line));
        }
        found.push((fence, body));
    }
    found
}
