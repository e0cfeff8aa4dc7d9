//! Envelopes: what a client wraps around the words a person wrote (OpenClaw's
//! `[Sat 2026-12-05 09:00 UTC] ` prefix, its `Runtime: agent=… | session=…` suffix, metadata
//! blocks), declared in the rules (`envelope NAME prefix|suffix|anywhere [key] /re/`) and
//! peeled off each person message before `last_user`, `user` and the keyword scores read it.
//!
//! Peeling a message: every `anywhere` match is removed; then, until nothing changes, a
//! `prefix` that matches at the start and a `suffix` that matches at the end are cut off, with
//! the white space around them. Prefix regexes are compiled anchored at the start and suffix
//! regexes at the end, so neither scans the message; `anywhere` regexes search it, skipping
//! ahead on their literal prefix. What each envelope matched is kept: `envelope("NAME")` reads
//! it, and an envelope marked `key` names the conversation.

use std::borrow::Cow;
use std::sync::Arc;

use regex::Regex;

/// Where an envelope sits in a person's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EnvelopeKind {
    /// At the start (after leading white space); peeled repeatedly.
    Prefix,
    /// At the end (before trailing white space); peeled repeatedly.
    Suffix,
    /// Anywhere: every match removed.
    Anywhere,
}

impl EnvelopeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EnvelopeKind::Prefix => "prefix",
            EnvelopeKind::Suffix => "suffix",
            EnvelopeKind::Anywhere => "anywhere",
        }
    }
}

/// A compiled envelope.
#[derive(Debug)]
pub struct Envelope {
    pub name: Arc<str>,
    pub kind: EnvelopeKind,
    /// What it matched identifies the conversation.
    pub key: bool,
    /// Anchored at the start (prefix) or the end (suffix) of the text.
    regex: Regex,
}

impl Envelope {
    /// Compile `source` (the regex as written, flags applied) for `kind`.
    pub fn new(
        name: &str,
        kind: EnvelopeKind,
        key: bool,
        source: &str,
    ) -> Result<Envelope, regex::Error> {
        let anchored = match kind {
            EnvelopeKind::Prefix => format!("^(?:{source})"),
            EnvelopeKind::Suffix => format!("(?:{source})$"),
            EnvelopeKind::Anywhere => source.to_owned(),
        };
        let regex = regex::RegexBuilder::new(&anchored)
            .size_limit(1 << 20)
            .build()?;
        Ok(Envelope {
            name: Arc::from(name),
            kind,
            key,
            regex,
        })
    }
}

/// A person's message with its envelope peeled off.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Peeled<'r> {
    /// What the person wrote.
    pub text: Cow<'r, str>,
    /// Each envelope that matched (index in the table's envelopes) and what it matched, the
    /// first match of each.
    pub found: Vec<(u16, Cow<'r, str>)>,
}

impl<'r> Peeled<'r> {
    /// What envelope `idx` matched, if it did.
    pub fn matched(&self, idx: u16) -> Option<&str> {
        self.found
            .iter()
            .find(|(i, _)| *i == idx)
            .map(|(_, t)| t.as_ref())
    }
}

/// More peeling rounds than any real envelope has layers; a guard, not a limit met in use.
const MAX_ROUNDS: usize = 32;

/// Peel `text` with `envelopes` (see the module's doc).
pub fn peel<'r>(envelopes: &[Envelope], text: Cow<'r, str>) -> Peeled<'r> {
    if envelopes.is_empty() {
        return Peeled {
            text,
            found: Vec::new(),
        };
    }
    let mut found: Vec<(u16, Cow<'r, str>)> = Vec::new();
    let mut removed = None;
    for (i, e) in envelopes.iter().enumerate() {
        if e.kind != EnvelopeKind::Anywhere {
            continue;
        }
        let current: &str = removed.as_deref().unwrap_or(&text);
        let Some(first) = e.regex.find(current).filter(|m| !m.is_empty()) else {
            continue;
        };
        found.push((i as u16, Cow::Owned(first.as_str().to_owned())));
        removed = Some(e.regex.replace_all(current, "").into_owned());
    }
    match (removed, text) {
        (None, Cow::Borrowed(t)) => {
            let rest = peel_ends(envelopes, t, &mut found);
            Peeled {
                text: Cow::Borrowed(rest),
                found,
            }
        }
        (Some(owned), _) | (None, Cow::Owned(owned)) => {
            let mut local = Vec::new();
            let rest = peel_ends(envelopes, &owned, &mut local).to_owned();
            found.extend(
                local
                    .into_iter()
                    .map(|(i, t)| (i, Cow::Owned(t.into_owned()))),
            );
            Peeled {
                text: Cow::Owned(rest),
                found,
            }
        }
    }
}

/// Cut prefixes and suffixes off `text` until none matches; what is left, trimmed.
fn peel_ends<'a>(
    envelopes: &[Envelope],
    text: &'a str,
    found: &mut Vec<(u16, Cow<'a, str>)>,
) -> &'a str {
    let mut rest = text.trim();
    for _ in 0..MAX_ROUNDS {
        let before = rest.len();
        for (i, e) in envelopes.iter().enumerate() {
            let m = match e.kind {
                EnvelopeKind::Anywhere => continue,
                EnvelopeKind::Prefix | EnvelopeKind::Suffix => e.regex.find(rest),
            };
            let Some(m) = m.filter(|m| !m.is_empty()) else {
                continue;
            };
            if !found.iter().any(|(f, _)| usize::from(*f) == i) {
                found.push((i as u16, Cow::Borrowed(m.as_str())));
            }
            rest = match e.kind {
                EnvelopeKind::Prefix => rest[m.end()..].trim_start(),
                _ => rest[..m.start()].trim_end(),
            };
        }
        if rest.len() == before {
            break;
        }
    }
    rest
}

#[cfg(test)]
mod tests {
    use super::*;

    fn openclaw() -> Vec<Envelope> {
        [
            (
                "timestamp",
                EnvelopeKind::Prefix,
                false,
                r"\[(?:[A-Z][a-z]{2} )?\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}[^\]\n]{0,40}\] *",
            ),
            (
                "metadata",
                EnvelopeKind::Prefix,
                false,
                r"[A-Z][A-Za-z ]{2,60} \(untrusted(?: metadata|, for context)\):[ \t]*\n```[a-z]*\n(?s:.*?)\n```[ \t]*(?:\n|$)",
            ),
            (
                "runtime",
                EnvelopeKind::Suffix,
                true,
                r"(?:^|\n)[ \t]*Runtime: agent=[^\n|]* \| session=[^\n]*",
            ),
            (
                "internal",
                EnvelopeKind::Anywhere,
                false,
                r"<<<BEGIN_INTERNAL>>>(?s:.*?)<<<END_INTERNAL>>>",
            ),
        ]
        .into_iter()
        .map(|(n, k, key, re)| Envelope::new(n, k, key, re).expect("regex"))
        .collect()
    }

    fn peeled(text: &str) -> (String, Vec<String>) {
        let envs = openclaw();
        let p = peel(&envs, Cow::Borrowed(text));
        let names = p
            .found
            .iter()
            .map(|(i, _)| envs[usize::from(*i)].name.to_string())
            .collect();
        (p.text.into_owned(), names)
    }

    #[test]
    fn the_timestamp_prefix_and_the_runtime_suffix_come_off() {
        let (text, found) = peeled(
            "[Fri 2026-12-04 23:20 UTC] No, that's wrong: find the race\n\nRuntime: agent=main | session=agent:main:main | sessionId=abc | model=clawgate/auto | shell=bash",
        );
        assert_eq!(text, "No, that's wrong: find the race");
        assert_eq!(found, ["timestamp", "runtime"]);
    }

    #[test]
    fn a_metadata_block_before_or_after_the_timestamp_comes_off() {
        let block = "Sender (untrusted metadata):\n```json\n{\"name\": \"Anna\"}\n```\n\n";
        for text in [
            format!("{block}[Sun 2026-04-26 23:57 GMT+8] thanks!"),
            format!("[Sun 2026-04-26 23:57 GMT+8] {block}thanks!"),
        ] {
            assert_eq!(peeled(&text).0, "thanks!", "{text:?}");
        }
        let two = format!("Conversation info (untrusted metadata):\n```json\n{{}}\n```\n{block}Was ist ein Akronym?");
        assert_eq!(peeled(&two).0, "Was ist ein Akronym?");
    }

    #[test]
    fn a_message_that_is_only_an_envelope_leaves_nothing_but_keeps_the_key() {
        let envs = openclaw();
        let p = peel(
            &envs,
            Cow::Borrowed("[Sat 2026-12-05 09:00 UTC] \n\nRuntime: agent=main | session=agent:main:cron:7 | shell=bash"),
        );
        assert_eq!(p.text, "");
        assert_eq!(
            p.matched(2).map(str::trim),
            Some("Runtime: agent=main | session=agent:main:cron:7 | shell=bash")
        );
    }

    #[test]
    fn envelope_words_inside_the_persons_text_stay() {
        for text in [
            "What does 'Runtime: agent=main' mean in my logs?",
            "see [2026-01-01 10:00 UTC] in the middle",
            "plain text with no envelope at all",
        ] {
            assert_eq!(peeled(text).0, text, "{text:?}");
        }
        // A Runtime line in the middle is the person's text, not the suffix.
        let mid = "Runtime: agent=x | session=y\nand then my question";
        assert_eq!(peeled(mid).0, mid);
    }

    #[test]
    fn anywhere_envelopes_are_removed_wherever_they_are() {
        let (text, found) =
            peeled("[Fri 2026-12-04 23:20 UTC] a <<<BEGIN_INTERNAL>>>x\ny<<<END_INTERNAL>>>b");
        assert_eq!(text, "a b");
        assert_eq!(found, ["internal", "timestamp"]);
    }
}
