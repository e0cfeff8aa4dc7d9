//! `${VAR}` / `${VAR:-default}` expansion of config string values.

/// Expand `${NAME}`, `${NAME:-default}` (default when unset or empty) and `${NAME-default}`
/// (default only when unset) in `input`. An unset `${NAME}` expands to the empty string, so a
/// provider whose key variable is unset is skipped rather than loaded with a literal key.
/// `$$` is a literal `$`. Text that is not a well-formed reference is kept as written.
pub fn expand(input: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    if !input.contains('$') {
        return input.to_owned();
    }
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
            continue;
        }
        let Some(body) = after.strip_prefix('{') else {
            out.push('$');
            rest = after;
            continue;
        };
        let Some(end) = body.find('}') else {
            out.push_str(&rest[pos..]);
            return out;
        };
        let inner = &body[..end];
        let (name, default, empty_counts_as_unset) = if let Some(i) = inner.find(":-") {
            (&inner[..i], Some(&inner[i + 2..]), true)
        } else if let Some(i) = inner.find('-') {
            (&inner[..i], Some(&inner[i + 1..]), false)
        } else {
            (inner, None, false)
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            out.push_str(&rest[pos..pos + 2 + end + 1]);
            rest = &body[end + 1..];
            continue;
        }
        let value = lookup(name);
        let use_default = match &value {
            None => true,
            Some(v) => empty_counts_as_unset && v.is_empty(),
        };
        match (use_default, default) {
            (true, Some(d)) => out.push_str(&expand(d, lookup)),
            (true, None) => {}
            (false, _) => out.push_str(value.as_deref().unwrap_or("")),
        }
        rest = &body[end + 1..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::expand;

    fn env(name: &str) -> Option<String> {
        match name {
            "SET" => Some("value".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expansion_table() {
        let cases = [
            ("plain", "plain"),
            ("${SET}", "value"),
            ("${UNSET}", ""),
            ("${UNSET:-fallback}", "fallback"),
            ("${EMPTY:-fallback}", "fallback"),
            ("${EMPTY-fallback}", ""),
            ("${UNSET-fallback}", "fallback"),
            ("${SET:-fallback}", "value"),
            ("https://${SET}/v1", "https://value/v1"),
            (
                "${UNSET:-https://api.deepseek.com/v1}",
                "https://api.deepseek.com/v1",
            ),
            ("cost $5", "cost $5"),
            ("$${SET}", "${SET}"),
            ("${not valid}", "${not valid}"),
            ("${UNCLOSED", "${UNCLOSED"),
        ];
        for (input, want) in cases {
            assert_eq!(expand(input, &env), want, "{input}");
        }
    }
}
