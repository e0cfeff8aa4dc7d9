//! Token usage from upstream responses, the chars/4 estimate when upstream reports none, and cost.
//!
//! Understands OpenAI's `usage` (`prompt_tokens`, `completion_tokens`,
//! `prompt_tokens_details.cached_tokens`) and DeepSeek's (`prompt_cache_hit_tokens`,
//! `prompt_cache_miss_tokens`), in a whole completion or in the last chunk of a stream that was
//! sent with `stream_options.include_usage`.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::config::Pricing;

/// Token counts of one request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt: u64,
    pub completion: u64,
    /// Prompt tokens served from the provider's prompt cache (0 when not reported).
    pub cache_hit: u64,
    /// Prompt tokens not served from cache (0 when the provider reports no cache figures).
    pub cache_miss: u64,
    /// True when the counts are an estimate, not the provider's.
    pub estimated: bool,
}

/// What one parse of an answer (or a stream chunk) tells: whether it is an error envelope,
/// whether it has `choices`, and its `usage`.
///
/// All three are taken as raw JSON, skipped by the parser's own scan (much cheaper than
/// visiting every value inside them); `usage` is read on its own afterwards, so a provider's
/// odd usage never makes its answer unreadable.
#[derive(Deserialize)]
pub(crate) struct CompletionProbe<'a> {
    #[serde(borrow)]
    pub error: Option<&'a RawValue>,
    #[serde(borrow)]
    pub choices: Option<&'a RawValue>,
    #[serde(borrow)]
    usage: Option<&'a RawValue>,
}

impl CompletionProbe<'_> {
    /// The answer's `usage`; `None` when absent, `null` or not a usage object.
    pub fn usage(&self) -> Option<Usage> {
        let raw = self.usage?.get();
        if !raw.starts_with('{') {
            return None;
        }
        serde_json::from_str::<RawUsage>(raw)
            .ok()
            .map(RawUsage::into_usage)
    }
}

#[derive(Deserialize)]
struct RawUsage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    prompt_cache_hit_tokens: Option<u64>,
    #[serde(default)]
    prompt_cache_miss_tokens: Option<u64>,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
}

#[derive(Deserialize)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

impl RawUsage {
    fn into_usage(self) -> Usage {
        Usage::reported(
            self.prompt_tokens.unwrap_or(0),
            self.completion_tokens.unwrap_or(0),
            self.prompt_cache_hit_tokens,
            self.prompt_cache_miss_tokens,
            self.prompt_tokens_details.and_then(|d| d.cached_tokens),
        )
    }
}

impl Usage {
    /// Counts a provider reported: DeepSeek's cache halves (`hit`, `miss`) where given, else
    /// OpenAI's `cached` part of the prompt, else no cache figures.
    pub fn reported(
        prompt: u64,
        completion: u64,
        hit: Option<u64>,
        miss: Option<u64>,
        cached: Option<u64>,
    ) -> Usage {
        let (cache_hit, cache_miss) = match (hit, miss, cached) {
            // DeepSeek reports both halves.
            (Some(hit), Some(miss), _) => (hit, miss),
            (Some(hit), None, _) => (hit, prompt.saturating_sub(hit)),
            (None, Some(miss), _) => (prompt.saturating_sub(miss), miss),
            // OpenAI reports the cached part of prompt_tokens.
            (None, None, Some(hit)) => (hit, prompt.saturating_sub(hit)),
            (None, None, None) => (0, 0),
        };
        Usage {
            prompt,
            completion,
            cache_hit,
            cache_miss,
            estimated: false,
        }
    }
}

/// The `usage` of a non-streamed chat completion body; `None` when absent, `null`, not a usage
/// object or not JSON.
pub fn from_completion(body: &[u8]) -> Option<Usage> {
    serde_json::from_slice::<CompletionProbe>(body)
        .ok()?
        .usage()
}

/// The `usage` of one stream chunk (the JSON after `data:`; a leading `data:` is accepted too);
/// `None` for chunks without usage (OpenAI sends `"usage": null` on all but the last) and `[DONE]`.
pub fn from_sse_event(data: &[u8]) -> Option<Usage> {
    // Most chunks carry no usage: skip the JSON parse for them.
    memchr::memmem::find(data, b"\"usage\"")?;
    let data = data.trim_ascii_start();
    let data = data.strip_prefix(b"data:").unwrap_or(data);
    from_completion(data)
}

/// An estimate for a response without usage: about four characters per token (rounded up).
pub fn estimate(prompt_chars: usize, completion_chars: usize) -> Usage {
    Usage {
        prompt: prompt_chars.div_ceil(4) as u64,
        completion: completion_chars.div_ceil(4) as u64,
        cache_hit: 0,
        cache_miss: 0,
        estimated: true,
    }
}

/// Cost in USD with `pricing` per million tokens. As in the original ClawGate: when cache figures
/// exist, hits are priced at `cache_read` (else `input`) and misses at `input`, and
/// `prompt_tokens` is not used; otherwise every prompt token is priced at `input`.
pub fn cost(pricing: &Pricing, usage: &Usage) -> f64 {
    let input = pricing.input;
    let input_cost = if usage.cache_hit > 0 || usage.cache_miss > 0 {
        usage.cache_hit as f64 * pricing.cache_read.unwrap_or(input)
            + usage.cache_miss as f64 * input
    } else {
        usage.prompt as f64 * input
    };
    (input_cost + usage.completion as f64 * pricing.output) / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEEPSEEK: Pricing = Pricing {
        input: 0.27,
        output: 1.10,
        cache_read: Some(0.07),
    };

    #[test]
    fn a_million_in_and_out_at_deepseek_prices_costs_1_37() {
        let u = Usage {
            prompt: 1_000_000,
            completion: 1_000_000,
            ..Usage::default()
        };
        assert!((cost(&DEEPSEEK, &u) - 1.37).abs() < 1e-9);
    }

    #[test]
    fn cache_hits_are_priced_at_cache_read() {
        let u = Usage {
            prompt: 100,
            completion: 50,
            cache_hit: 80,
            cache_miss: 20,
            estimated: false,
        };
        assert!((cost(&DEEPSEEK, &u) - 6.6e-5).abs() < 1e-12);
        let no_cache_price = Pricing {
            cache_read: None,
            ..DEEPSEEK
        };
        assert!((cost(&no_cache_price, &u) - (100.0 * 0.27 + 50.0 * 1.10) / 1e6).abs() < 1e-12);
    }

    #[test]
    fn deepseek_usage_reports_cache_hits_and_misses() {
        let body = br#"{"id":"x","choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":100,
            "completion_tokens":50,"total_tokens":150,"prompt_cache_hit_tokens":80,"prompt_cache_miss_tokens":20}}"#;
        let u = from_completion(body);
        assert_eq!(
            u,
            Some(Usage {
                prompt: 100,
                completion: 50,
                cache_hit: 80,
                cache_miss: 20,
                estimated: false
            })
        );
    }

    #[test]
    fn openai_cached_tokens_split_the_prompt() {
        let body = br#"{"usage":{"prompt_tokens":2000,"completion_tokens":10,"prompt_tokens_details":{"cached_tokens":1536}}}"#;
        let u = from_completion(body);
        assert_eq!(
            u,
            Some(Usage {
                prompt: 2000,
                completion: 10,
                cache_hit: 1536,
                cache_miss: 464,
                estimated: false
            })
        );
    }

    #[test]
    fn plain_usage_has_no_cache_figures() {
        let u = from_completion(br#"{"usage":{"prompt_tokens":7,"completion_tokens":3}}"#);
        assert_eq!(
            u,
            Some(Usage {
                prompt: 7,
                completion: 3,
                ..Usage::default()
            })
        );
    }

    #[test]
    fn one_parse_of_an_answer_gives_its_shape_and_usage() {
        let probe = |body: &str| {
            let p: CompletionProbe = serde_json::from_str(body).unwrap();
            (p.error.is_some(), p.choices.is_some(), p.usage())
        };
        let usage = Usage {
            prompt: 12,
            completion: 6,
            ..Usage::default()
        };
        assert_eq!(
            probe(
                r#"{"choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":12,"completion_tokens":6}}"#
            ),
            (false, true, Some(usage))
        );
        assert_eq!(
            probe(r#"{"error":{"message":"overloaded"}}"#),
            (true, false, None)
        );
        // A usage of a shape nobody documents is no usage, not an unreadable answer.
        for odd in [r#""n/a""#, "[]", "7", r#"{"prompt_tokens":"12"}"#, "null"] {
            assert_eq!(
                probe(&format!(r#"{{"choices":[],"usage":{odd}}}"#)),
                (false, true, None),
                "{odd}"
            );
        }
    }

    #[test]
    fn bodies_without_usage_give_none() {
        assert_eq!(from_completion(br#"{"choices":[]}"#), None);
        assert_eq!(from_completion(br#"{"usage":null}"#), None);
        assert_eq!(from_completion(b"not json"), None);
    }

    #[test]
    fn only_the_usage_chunk_of_a_stream_counts() {
        assert_eq!(
            from_sse_event(br#"{"choices":[{"delta":{"content":"x"}}],"usage":null}"#),
            None
        );
        assert_eq!(
            from_sse_event(br#"{"choices":[{"delta":{"content":"x"}}]}"#),
            None
        );
        assert_eq!(from_sse_event(b"[DONE]"), None);
        let last = br#"data: {"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":4}}"#;
        assert_eq!(
            from_sse_event(last),
            Some(Usage {
                prompt: 12,
                completion: 4,
                ..Usage::default()
            })
        );
    }

    #[test]
    fn estimates_are_four_chars_per_token_and_marked() {
        let u = estimate(4001, 8);
        assert_eq!((u.prompt, u.completion, u.estimated), (1001, 2, true));
        assert_eq!(estimate(0, 0).prompt, 0);
    }
}
