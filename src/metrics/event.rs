//! [`RequestEvent`]: what is recorded about one client request, and its storage encoding.
//!
//! Stored as a compact binary record (see [`codec`](super::codec)) rather than JSON: ≈37 bytes
//! for a typical routed request against ≈120 in the first binary layout and ≈400 as JSON, which
//! matters at millions of rows. The record leaves out what the row's key already holds (the
//! time), refers to provider ids, model names, layers, rule names and short error texts through
//! the [`strings`](super::strings) dictionary, stores latencies as whole microseconds and sets
//! flags instead of writing empty fields.
//!
//! Two layouts are read: the compact one (first byte `0`, then a format number, now 3: format 2
//! plus the lane, the affinity and the client API at the end) that is written, and version 1
//! (first byte `1`): the same fields with every text inline, a `f64` per
//! latency and the time in the record, which files written before the compact layout hold. A
//! reader that knows only version 1 rejects a compact record (it refuses a first byte below 1)
//! instead of misreading it. Within a layout new fields are appended at the end; older readers
//! ignore trailing bytes, so the format can grow without a migration. The format number says
//! which appended fields a record has (a cut record is then an error, not an older format):
//! format 3 appended `lane` and `affinity` (format-2 records read them as `""`). The struct itself is
//! `Serialize`/`Deserialize` for callers that want JSON.

use serde::{Deserialize, Serialize};

#[cfg(test)]
use super::codec::put_str;
use super::codec::{put_f64, put_u64, DecodeError, Reader};
use super::usage::Usage;

/// Longest stored error text, in characters (the original ClawGate kept 500 too).
pub const MAX_ERROR_CHARS: usize = 500;
/// Most attempts kept per event; a longer chain is cut (the count of the rest is lost).
pub const MAX_ATTEMPTS: usize = 32;

/// First byte of a version-1 record (self-contained: every text inline).
const VERSION: u8 = 1;
/// First byte of a compact record; the next byte is its format, [`COMPACT_FORMAT`] or later.
const COMPACT: u8 = 0;
const COMPACT_FORMAT: u8 = 3;
/// The oldest compact format read (it has no lane, affinity or client API).
const OLDEST_COMPACT_FORMAT: u8 = 2;
const FLAG_ESTIMATED: u8 = 1;
const FLAG_STREAM: u8 = 2;
/// The classifier's own call (both encodings).
const FLAG_CLASSIFICATION: u8 = 128;
// Compact records only: which optional fields follow.
const HAS_PROVIDER: u8 = 4;
const HAS_UPSTREAM_MODEL: u8 = 8;
const HAS_TTFB: u8 = 16;
const HAS_COST: u8 = 32;
const HAS_ERROR: u8 = 64;

/// The API of events that name none.
pub const HUB_API: &str = "openai-chat";

/// Writes a reference to a text (see [`strings`](super::strings)).
pub(crate) type PutRef<'f, E> = dyn FnMut(&mut Vec<u8>, &str) -> Result<(), E> + 'f;
/// Resolves a text reference in a stored record (see [`strings`](super::strings)).
pub(crate) type ReadRef<'f> = dyn FnMut(&mut Reader<'_>) -> Result<String, DecodeError> + 'f;

/// A provider that was tried and failed before the request was answered (or given up on).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AttemptRecord {
    pub provider: String,
    /// Why it failed, e.g. `HTTP 429` or `timeout (first byte)`; never a secret or message text.
    pub error: String,
}

impl AttemptRecord {
    /// Whether the provider was tried and failed; `false` for one skipped because it cannot
    /// take the request (`skipped: vision`, `skipped: tools`, `skipped: context`), which is
    /// listed with the attempts but is no failure of the provider.
    pub fn failed(&self) -> bool {
        !matches!(
            self.error.as_str(),
            "skipped: vision" | "skipped: tools" | "skipped: context"
        )
    }
}

/// One client request: direct, routed, or failed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RequestEvent {
    /// When the request arrived, unix milliseconds.
    pub ts_ms: u64,
    /// The `model` the client asked for (`auto`, a provider id, anything).
    pub requested_model: String,
    /// The provider that answered; `None` when every target failed or none was tried.
    pub provider: Option<String>,
    /// The model name sent upstream by the provider that answered.
    pub upstream_model: Option<String>,
    /// Routing layer (`static`, `heuristic`, `direct`, `fallback`, ...).
    pub layer: String,
    /// Rule name (`explicit-model`, `math-reasoning`, `no-match`, ...).
    pub rule: String,
    /// Providers that failed (or were skipped) before the answer, in the order tried.
    pub attempts: Vec<AttemptRecord>,
    /// HTTP status returned to the client.
    pub status: u16,
    /// Total time to the last byte sent to the client, ms.
    pub latency_ms: f64,
    /// Time to the first body byte from upstream (streams), ms.
    pub ttfb_ms: Option<f64>,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cache_hit_tokens: u64,
    pub cache_miss_tokens: u64,
    /// True when the token counts are a chars/4 estimate because upstream reported no usage.
    pub usage_estimated: bool,
    pub cost_usd: f64,
    pub stream: bool,
    /// The client-visible error code or message; never request content, never a secret.
    pub error: Option<String>,
    /// The classifier's own call (layer `classification`), not a client request.
    #[serde(default)]
    pub classification: bool,
    /// The request's lane (`main`, or a rules `lane`); `""` when it was not routed.
    #[serde(default)]
    pub lane: String,
    /// How the answer relates to its conversation's previous one (sticky routing):
    /// `hit`, `miss`, `switch` or `off`; `""` when no provider answered.
    #[serde(default)]
    pub affinity: String,
    /// The client API the request came in (`anthropic-messages`, …); empty for OpenAI chat
    /// completions, the hub's own API, and in rows written before ClawGate had other APIs.
    #[serde(default)]
    pub api: String,
}

impl RequestEvent {
    /// Whether the client got a successful answer from a provider.
    pub fn succeeded(&self) -> bool {
        self.provider.is_some() && (200..400).contains(&self.status) && self.error.is_none()
    }

    /// The client API's name; `openai-chat` for rows that name none.
    pub fn api_name(&self) -> &str {
        if self.api.is_empty() {
            HUB_API
        } else {
            &self.api
        }
    }

    /// Whether a provider answered after at least one earlier target failed.
    pub fn fell_back(&self) -> bool {
        self.provider.is_some() && !self.attempts.is_empty()
    }

    /// Fills the token fields and `usage_estimated` from `usage`, and sets `cost_usd` from the
    /// provider's pricing.
    pub fn set_usage(&mut self, usage: &Usage, pricing: &crate::config::Pricing) {
        self.prompt_tokens = usage.prompt;
        self.completion_tokens = usage.completion;
        self.cache_hit_tokens = usage.cache_hit;
        self.cache_miss_tokens = usage.cache_miss;
        self.usage_estimated = usage.estimated;
        self.cost_usd = super::usage::cost(pricing, usage);
    }

    /// The current time in unix milliseconds, for `ts_ms`.
    pub fn now_ms() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }

    /// The storage encoding (see the module docs): `put_ref` writes a reference to a text (see
    /// [`Interner::put`](super::strings::Interner::put)). Error texts are cut to
    /// [`MAX_ERROR_CHARS`]; latencies are kept to the microsecond. The time is not included: it
    /// is the row's key.
    pub(crate) fn encode<E>(
        &self,
        out: &mut Vec<u8>,
        put_ref: &mut PutRef<'_, E>,
    ) -> Result<(), E> {
        out.push(COMPACT);
        out.push(COMPACT_FORMAT);
        let mut flags = 0;
        for (set, flag) in [
            (self.usage_estimated, FLAG_ESTIMATED),
            (self.stream, FLAG_STREAM),
            (self.provider.is_some(), HAS_PROVIDER),
            (self.upstream_model.is_some(), HAS_UPSTREAM_MODEL),
            (self.ttfb_ms.is_some(), HAS_TTFB),
            (self.cost_usd.to_bits() != 0, HAS_COST),
            (self.error.is_some(), HAS_ERROR),
            (self.classification, FLAG_CLASSIFICATION),
        ] {
            if set {
                flags |= flag;
            }
        }
        out.push(flags);
        put_ref(out, &self.requested_model)?;
        if let Some(p) = &self.provider {
            put_ref(out, p)?;
        }
        if let Some(m) = &self.upstream_model {
            put_ref(out, m)?;
        }
        put_ref(out, &self.layer)?;
        put_ref(out, &self.rule)?;
        let attempts = &self.attempts[..self.attempts.len().min(MAX_ATTEMPTS)];
        put_u64(out, attempts.len() as u64);
        for a in attempts {
            put_ref(out, &a.provider)?;
            put_ref(out, truncate(&a.error))?;
        }
        put_u64(out, u64::from(self.status));
        put_u64(out, micros(self.latency_ms));
        if let Some(t) = self.ttfb_ms {
            put_u64(out, micros(t));
        }
        for v in [
            self.prompt_tokens,
            self.completion_tokens,
            self.cache_hit_tokens,
            self.cache_miss_tokens,
        ] {
            put_u64(out, v);
        }
        if flags & HAS_COST != 0 {
            put_f64(out, self.cost_usd);
        }
        if let Some(e) = &self.error {
            put_ref(out, truncate(e))?;
        }
        // Format 3.
        put_ref(out, &self.lane)?;
        put_ref(out, &self.affinity)?;
        put_ref(out, &self.api)?;
        Ok(())
    }

    /// Reads a record of either layout; `ts_ms` is the time from the row's key (version-1
    /// records carry their own), `read_ref` resolves a text reference.
    pub(crate) fn decode(
        buf: &[u8],
        ts_ms: u64,
        read_ref: &mut ReadRef<'_>,
    ) -> Result<RequestEvent, DecodeError> {
        match buf.first() {
            Some(&COMPACT) => Self::decode_compact(buf, ts_ms, read_ref),
            _ => Self::decode_v1(buf),
        }
    }

    fn decode_compact(
        buf: &[u8],
        ts_ms: u64,
        read_ref: &mut ReadRef<'_>,
    ) -> Result<RequestEvent, DecodeError> {
        let mut r = Reader::new(buf);
        r.u8()?;
        // Later formats only append.
        let format = r.u8()?;
        if format < OLDEST_COMPACT_FORMAT {
            return Err(DecodeError("unknown event format"));
        }
        let flags = r.u8()?;
        let has = |f: u8| flags & f != 0;
        let requested_model = read_ref(&mut r)?;
        let provider = if has(HAS_PROVIDER) {
            Some(read_ref(&mut r)?)
        } else {
            None
        };
        let upstream_model = if has(HAS_UPSTREAM_MODEL) {
            Some(read_ref(&mut r)?)
        } else {
            None
        };
        let layer = read_ref(&mut r)?;
        let rule = read_ref(&mut r)?;
        let n = r.u64()?;
        if n > MAX_ATTEMPTS as u64 {
            return Err(DecodeError("too many attempts"));
        }
        let mut attempts = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let provider = read_ref(&mut r)?;
            let error = read_ref(&mut r)?;
            attempts.push(AttemptRecord { provider, error });
        }
        let status = u16::try_from(r.u64()?).map_err(|_| DecodeError("bad status"))?;
        let latency_ms = r.u64()? as f64 / 1e3;
        let ttfb_ms = if has(HAS_TTFB) {
            Some(r.u64()? as f64 / 1e3)
        } else {
            None
        };
        let prompt_tokens = r.u64()?;
        let completion_tokens = r.u64()?;
        let cache_hit_tokens = r.u64()?;
        let cache_miss_tokens = r.u64()?;
        let cost_usd = if has(HAS_COST) { r.f64()? } else { 0.0 };
        let error = if has(HAS_ERROR) {
            Some(read_ref(&mut r)?)
        } else {
            None
        };
        let (lane, affinity, api) = if format >= 3 {
            (read_ref(&mut r)?, read_ref(&mut r)?, read_ref(&mut r)?)
        } else {
            (String::new(), String::new(), String::new())
        };
        Ok(RequestEvent {
            ts_ms,
            requested_model,
            provider,
            upstream_model,
            layer,
            rule,
            attempts,
            status,
            latency_ms,
            ttfb_ms,
            prompt_tokens,
            completion_tokens,
            cache_hit_tokens,
            cache_miss_tokens,
            usage_estimated: has(FLAG_ESTIMATED),
            cost_usd,
            stream: has(FLAG_STREAM),
            error,
            classification: has(FLAG_CLASSIFICATION),
            lane,
            affinity,
            api,
        })
    }

    /// The version-1 encoding, which files written by earlier releases hold.
    #[cfg(test)]
    pub(crate) fn encode_v1(&self, out: &mut Vec<u8>) {
        out.push(VERSION);
        put_u64(out, self.ts_ms);
        put_str(out, &self.requested_model);
        put_opt_str(out, self.provider.as_deref());
        put_opt_str(out, self.upstream_model.as_deref());
        put_str(out, &self.layer);
        put_str(out, &self.rule);
        let attempts = &self.attempts[..self.attempts.len().min(MAX_ATTEMPTS)];
        put_u64(out, attempts.len() as u64);
        for a in attempts {
            put_str(out, &a.provider);
            put_str(out, truncate(&a.error));
        }
        put_u64(out, u64::from(self.status));
        put_f64(out, self.latency_ms);
        match self.ttfb_ms {
            Some(t) => {
                out.push(1);
                put_f64(out, t);
            }
            None => out.push(0),
        }
        for v in [
            self.prompt_tokens,
            self.completion_tokens,
            self.cache_hit_tokens,
            self.cache_miss_tokens,
        ] {
            put_u64(out, v);
        }
        let mut flags = 0;
        if self.usage_estimated {
            flags |= FLAG_ESTIMATED;
        }
        if self.stream {
            flags |= FLAG_STREAM;
        }
        if self.classification {
            flags |= FLAG_CLASSIFICATION;
        }
        out.push(flags);
        put_f64(out, self.cost_usd);
        put_opt_str(out, self.error.as_deref().map(truncate));
    }

    /// Reads a version-1 record, ignoring fields appended by later versions.
    fn decode_v1(buf: &[u8]) -> Result<RequestEvent, DecodeError> {
        let mut r = Reader::new(buf);
        // Every version starts with the v1 fields; later versions only append.
        if r.u8()? < VERSION {
            return Err(DecodeError("unknown event version"));
        }
        let ts_ms = r.u64()?;
        let requested_model = r.str()?.to_owned();
        let provider = get_opt_str(&mut r)?;
        let upstream_model = get_opt_str(&mut r)?;
        let layer = r.str()?.to_owned();
        let rule = r.str()?.to_owned();
        let n = r.u64()?;
        if n > MAX_ATTEMPTS as u64 {
            return Err(DecodeError("too many attempts"));
        }
        let mut attempts = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let provider = r.str()?.to_owned();
            let error = r.str()?.to_owned();
            attempts.push(AttemptRecord { provider, error });
        }
        let status = u16::try_from(r.u64()?).map_err(|_| DecodeError("bad status"))?;
        let latency_ms = r.f64()?;
        let ttfb_ms = match r.u8()? {
            0 => None,
            _ => Some(r.f64()?),
        };
        let prompt_tokens = r.u64()?;
        let completion_tokens = r.u64()?;
        let cache_hit_tokens = r.u64()?;
        let cache_miss_tokens = r.u64()?;
        let flags = r.u8()?;
        let cost_usd = r.f64()?;
        let error = get_opt_str(&mut r)?;
        Ok(RequestEvent {
            ts_ms,
            requested_model,
            provider,
            upstream_model,
            layer,
            rule,
            attempts,
            status,
            latency_ms,
            ttfb_ms,
            prompt_tokens,
            completion_tokens,
            cache_hit_tokens,
            cache_miss_tokens,
            usage_estimated: flags & FLAG_ESTIMATED != 0,
            cost_usd,
            stream: flags & FLAG_STREAM != 0,
            error,
            classification: flags & FLAG_CLASSIFICATION != 0,
            lane: String::new(),
            affinity: String::new(),
            api: String::new(),
        })
    }
}

/// Milliseconds as whole microseconds (0 for negative, NaN or infinite values).
fn micros(ms: f64) -> u64 {
    if ms.is_finite() && ms > 0.0 {
        (ms * 1e3).round() as u64
    } else {
        0
    }
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(MAX_ERROR_CHARS) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
fn put_opt_str(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => {
            out.push(1);
            put_str(out, s);
        }
        None => out.push(0),
    }
}

fn get_opt_str(r: &mut Reader<'_>) -> Result<Option<String>, DecodeError> {
    Ok(match r.u8()? {
        0 => None,
        _ => Some(r.str()?.to_owned()),
    })
}

/// A typical routed, streamed request with one fallback: the tests' sample event.
#[cfg(test)]
pub(crate) fn routed_sample() -> RequestEvent {
    RequestEvent {
        ts_ms: 1_764_000_000_123,
        requested_model: "auto".into(),
        provider: Some("deepseek-chat".into()),
        upstream_model: Some("deepseek-chat".into()),
        layer: "heuristic".into(),
        rule: "tool-use".into(),
        attempts: vec![AttemptRecord {
            provider: "gemini-flash".into(),
            error: "HTTP 429".into(),
        }],
        status: 200,
        latency_ms: 812.5,
        ttfb_ms: Some(120.25),
        prompt_tokens: 1200,
        completion_tokens: 300,
        cache_hit_tokens: 1000,
        cache_miss_tokens: 200,
        usage_estimated: false,
        cost_usd: 0.000_484,
        stream: true,
        error: None,
        classification: false,
        lane: "main".into(),
        affinity: "hit".into(),
        api: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::convert::Infallible;

    /// An in-memory dictionary that interns texts as the store does.
    #[derive(Default)]
    struct Dict(Vec<String>);

    impl Dict {
        fn encode(&mut self, ev: &RequestEvent) -> Vec<u8> {
            let mut buf = Vec::new();
            let r: Result<(), Infallible> = ev.encode(&mut buf, &mut |out, s| {
                if s.len() > crate::metrics::strings::MAX_INTERNED_BYTES {
                    put_u64(out, 0);
                    put_str(out, s);
                    return Ok(());
                }
                let id = match self.0.iter().position(|t| t == s) {
                    Some(i) => i,
                    None => {
                        self.0.push(s.to_owned());
                        self.0.len() - 1
                    }
                };
                put_u64(out, id as u64 + 1);
                Ok(())
            });
            r.unwrap_or_else(|e| match e {});
            buf
        }

        fn decode(&self, buf: &[u8], ts_ms: u64) -> Result<RequestEvent, DecodeError> {
            RequestEvent::decode(buf, ts_ms, &mut |r| match r.u64()? {
                0 => Ok(r.str()?.to_owned()),
                id => self
                    .0
                    .get(id as usize - 1)
                    .cloned()
                    .ok_or(DecodeError("unknown string id")),
            })
        }
    }

    fn no_dict(_: &mut Reader<'_>) -> Result<String, DecodeError> {
        Err(DecodeError("no dictionary"))
    }

    #[test]
    fn a_routed_event_round_trips_and_is_compact() {
        let ev = routed_sample();
        let mut dict = Dict::default();
        let buf = dict.encode(&ev);
        assert_eq!(dict.decode(&buf, ev.ts_ms), Ok(ev.clone()));
        let mut v1 = Vec::new();
        ev.encode_v1(&mut v1);
        let json = serde_json::to_vec(&ev).map(|v| v.len()).unwrap_or(0);
        assert!(
            buf.len() <= 38 && buf.len() * 3 < v1.len() && buf.len() * 10 < json,
            "compact {} bytes vs version 1 {} vs JSON {json}",
            buf.len(),
            v1.len()
        );
    }

    #[test]
    fn version_1_records_still_decode_without_a_dictionary() {
        let mut ev = routed_sample();
        ev.error = Some("HTTP 502: bad gateway".into());
        (ev.lane, ev.affinity) = (String::new(), String::new());
        let mut buf = Vec::new();
        ev.encode_v1(&mut buf);
        // The time in a version-1 record wins over the key's (they are the same in a real file).
        assert_eq!(RequestEvent::decode(&buf, 0, &mut no_dict), Ok(ev));
    }

    #[test]
    fn format_2_records_read_with_no_lane_affinity_or_api_and_format_3_round_trips() {
        let mut ev = routed_sample();
        ev.api = "anthropic-messages".into();
        let mut dict = Dict::default();
        let buf = dict.encode(&ev);
        assert_eq!(dict.decode(&buf, ev.ts_ms), Ok(ev.clone()));
        // What the previous release wrote: the same record without the three appended fields.
        let mut old = buf.clone();
        old[1] = OLDEST_COMPACT_FORMAT;
        old.truncate(old.len() - 3);
        let back = dict.decode(&old, ev.ts_ms).unwrap();
        assert_eq!((back.api.as_str(), back.api_name()), ("", HUB_API));
        let want = RequestEvent {
            lane: String::new(),
            affinity: String::new(),
            api: String::new(),
            ..ev
        };
        assert_eq!(back, want);
    }

    #[test]
    fn a_compact_record_is_refused_by_a_version_1_reader() {
        // What an older release does with a row written by this one: it is skipped, not misread.
        let buf = Dict::default().encode(&routed_sample());
        let v1_reader_accepts = buf.first().is_some_and(|b| *b >= VERSION);
        assert!(!v1_reader_accepts);
    }

    #[test]
    fn long_errors_are_cut_at_a_char_boundary_and_kept_inline() {
        let mut ev = routed_sample();
        ev.error = Some("é".repeat(2000));
        let mut dict = Dict::default();
        let buf = dict.encode(&ev);
        let back = dict.decode(&buf, 0);
        assert_eq!(
            back.map(|e| e.error.unwrap_or_default().chars().count()),
            Ok(MAX_ERROR_CHARS)
        );
        assert!(dict.0.iter().all(|s| !s.starts_with('é')));
        let mut v1 = Vec::new();
        ev.encode_v1(&mut v1);
        let back = RequestEvent::decode(&v1, 0, &mut no_dict);
        assert_eq!(
            back.map(|e| e.error.unwrap_or_default().chars().count()),
            Ok(MAX_ERROR_CHARS)
        );
    }

    #[test]
    fn corrupt_records_are_errors() {
        let mut dict = Dict::default();
        let mut ev = routed_sample();
        ev.error = Some("boom".into());
        let buf = dict.encode(&ev);
        for cut in 0..buf.len() {
            assert!(dict.decode(&buf[..cut], 0).is_err(), "cut at {cut}");
        }
        let mut bad = buf.clone();
        bad[1] = 1; // a compact format older than the first one
        assert!(dict.decode(&bad, 0).is_err());
        // A reference to an id the dictionary does not have.
        assert!(Dict::default().decode(&buf, 0).is_err());
        let mut v1 = Vec::new();
        ev.encode_v1(&mut v1);
        for cut in 0..v1.len() {
            assert!(
                RequestEvent::decode(&v1[..cut], 0, &mut no_dict).is_err(),
                "cut at {cut}"
            );
        }
    }

    proptest! {
        #[test]
        fn any_event_round_trips(
            ts in any::<u64>(), model in ".{0,80}", provider in proptest::option::of("[a-z-]{1,12}"),
            upstream in proptest::option::of("[a-z0-9./-]{1,20}"),
            status in any::<u16>(), lat_us in 0u64..10_000_000_000, ttfb_us in proptest::option::of(0u64..1_000_000_000),
            toks in any::<[u64; 4]>(), est in any::<bool>(), stream in any::<bool>(),
            cost in prop_oneof![Just(0.0f64), 0.0f64..1e3], err in proptest::option::of(".{0,100}"),
            class in any::<bool>(), lane in "[a-z]{0,8}", affinity in "(|off|miss|hit|switch)",
            api in prop_oneof![Just(String::new()), "[a-z-]{1,20}"],
            attempts in proptest::collection::vec(("[a-z]{1,8}", ".{0,20}"), 0..4),
        ) {
            let ev = RequestEvent {
                ts_ms: ts, requested_model: model, provider, upstream_model: upstream,
                layer: "static".into(), rule: "r".into(),
                attempts: attempts.into_iter().map(|(provider, error)| AttemptRecord { provider, error }).collect(),
                status, latency_ms: lat_us as f64 / 1e3, ttfb_ms: ttfb_us.map(|t| t as f64 / 1e3),
                prompt_tokens: toks[0], completion_tokens: toks[1], cache_hit_tokens: toks[2], cache_miss_tokens: toks[3],
                usage_estimated: est, cost_usd: cost, stream, error: err, classification: class,
                lane, affinity, api,
            };
            let mut dict = Dict::default();
            let buf = dict.encode(&ev);
            prop_assert_eq!(dict.decode(&buf, ts), Ok(ev.clone()));
            let mut v1 = Vec::new();
            ev.encode_v1(&mut v1);
            // Version 1 has no lane, affinity or API.
            let ev = RequestEvent { lane: String::new(), affinity: String::new(), api: String::new(), ..ev };
            prop_assert_eq!(RequestEvent::decode(&v1, 0, &mut no_dict), Ok(ev));
        }
    }
}
