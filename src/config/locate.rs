//! Find the line of a key path (`providers.deepseek-chat.base_url`, `fallback_chain[2]`) in
//! YAML text, so that errors found after parsing can still point at the file's line.

/// 1-based line of `path` in `source`, or of the deepest ancestor that could be found.
pub fn line_of(source: &str, path: &str) -> Option<usize> {
    let lines: Vec<&str> = source.lines().collect();
    let mut rest = path;
    // The block being searched: line range and the indentation of its parent key.
    let (mut from, mut to, mut parent_indent) = (0usize, lines.len(), -1isize);
    let mut found = None;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('[') {
            let close = after.find(']')?;
            let index: usize = after[..close].parse().ok()?;
            let mut seen = 0;
            let mut hit = None;
            for (i, line) in lines.iter().enumerate().take(to).skip(from) {
                let trimmed = line.trim_start();
                if trimmed.starts_with("- ") || trimmed == "-" {
                    if seen == index {
                        hit = Some(i);
                        break;
                    }
                    seen += 1;
                }
            }
            let i = hit?;
            found = Some(i + 1);
            rest = after[close + 1..].trim_start_matches('.');
            from = i;
            to = i + 1;
            continue;
        }
        // Keys directly inside the block: the first indentation deeper than the parent's.
        let mut child_indent = None;
        let mut best: Option<(usize, usize)> = None; // (line index, key length)
        for (i, line) in lines.iter().enumerate().take(to).skip(from) {
            let trimmed = line.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let indent = (line.len() - trimmed.len()) as isize;
            if indent <= parent_indent {
                continue;
            }
            let ci = *child_indent.get_or_insert(indent);
            if indent != ci {
                continue;
            }
            let Some(key) = key_of(trimmed) else { continue };
            let matches = rest == key
                || rest
                    .strip_prefix(key)
                    .is_some_and(|r| r.starts_with('.') || r.starts_with('['));
            if matches && best.is_none_or(|(_, len)| key.len() > len) {
                best = Some((i, key.len()));
            }
        }
        let Some((i, len)) = best else { return found };
        found = Some(i + 1);
        let indent = (lines[i].len() - lines[i].trim_start().len()) as isize;
        // The block of this key ends at the next line with indentation <= its own.
        let end = lines
            .iter()
            .enumerate()
            .skip(i + 1)
            .find(|(_, l)| {
                let t = l.trim_start();
                !t.is_empty() && !t.starts_with('#') && ((l.len() - t.len()) as isize) <= indent
            })
            .map(|(j, _)| j)
            .unwrap_or(lines.len());
        rest = rest[len..].trim_start_matches('.');
        from = i + 1;
        to = end;
        parent_indent = indent;
    }
    found
}

fn key_of(trimmed: &str) -> Option<&str> {
    let trimmed = trimmed.strip_prefix("- ").unwrap_or(trimmed);
    let colon = trimmed.find(':')?;
    let key = trimmed[..colon].trim();
    Some(key.trim_matches(|c| c == '"' || c == '\''))
}

#[cfg(test)]
mod tests {
    use super::line_of;

    const SRC: &str = "server:\n  port: 8090\n\nproviders:\n  # a comment\n  deepseek-chat:\n    backend: openai-compat\n    base_url: x\n  gpt-4.1:\n    model: y\n    timeout:\n      read_s: 5\nfallback_chain:\n  - deepseek-chat\n  - nope\n";

    #[test]
    fn finds_keys_items_and_dotted_ids() {
        let cases = [
            ("server.port", Some(2)),
            ("providers.deepseek-chat.base_url", Some(8)),
            ("providers.deepseek-chat", Some(6)),
            ("providers.gpt-4.1.model", Some(10)),
            ("providers.gpt-4.1.timeout.read_s", Some(12)),
            ("fallback_chain[1]", Some(15)),
            ("providers.deepseek-chat.missing", Some(6)),
            ("nothing", None),
        ];
        for (path, want) in cases {
            assert_eq!(line_of(SRC, path), want, "{path}");
        }
    }
}
