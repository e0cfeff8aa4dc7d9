//! JSON Schema (as OpenAI clients send it) → a schema Gemini accepts.
//!
//! Gemini's `parameters` / `responseSchema` take a protobuf `Schema`: a subset of OpenAPI 3.0
//! where an unknown keyword (`additionalProperties`, `$schema`, `const`, ...) is a 400
//! "Unknown name", a `format` other than the few it knows is a 400, and an OBJECT without
//! `properties` is a 400 ("should be non-empty for OBJECT type"). [`clean`] rewrites a schema
//! into that subset: `$ref`s are inlined from `$defs`/`definitions`, `allOf` is merged,
//! `oneOf` becomes `anyOf`, `["string","null"]` becomes `nullable`, `const` becomes a
//! one-value `enum`, `required` keeps only declared properties, and everything else is
//! dropped.
//!
//! A free-form map (`additionalProperties` / `patternProperties` without `properties`, as
//! OpenClaw's `exec.env`) has no form in that subset; for such a schema [`clean`] answers in
//! the JSON Schema dialect Gemini takes in `parametersJsonSchema` / `responseJsonSchema`
//! instead, which keeps `additionalProperties`.

use serde_json::{Map, Value};

/// Which field a cleaned schema belongs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// The OpenAPI subset: `parameters`, `responseSchema`.
    OpenApi,
    /// JSON Schema: `parametersJsonSchema`, `responseJsonSchema`.
    JsonSchema,
}

/// A schema ready for Gemini, and the dialect it is written in.
#[derive(Debug, Clone, PartialEq)]
pub struct CleanSchema {
    pub dialect: Dialect,
    pub schema: Value,
}

impl CleanSchema {
    /// Whether the schema is an object with no properties: a function without parameters,
    /// which Gemini wants declared with no `parameters` at all.
    pub fn is_empty_object(&self) -> bool {
        let has_properties = self
            .schema
            .get("properties")
            .and_then(Value::as_object)
            .is_some_and(|m| !m.is_empty());
        self.dialect == Dialect::OpenApi
            && !has_properties
            && self.schema.get("anyOf").is_none()
            && self
                .schema
                .get("type")
                .and_then(Value::as_str)
                .is_none_or(|t| t == "object")
    }
}

/// Rewrite `schema` for Gemini (see the module docs).
pub fn clean(schema: &Value) -> CleanSchema {
    let mut openapi = Cleaner::new(schema, Dialect::OpenApi);
    let cleaned = openapi.clean(schema, 0);
    if !openapi.lossy {
        return CleanSchema {
            dialect: Dialect::OpenApi,
            schema: cleaned,
        };
    }
    let mut json = Cleaner::new(schema, Dialect::JsonSchema);
    let cleaned = json.clean(schema, 0);
    CleanSchema {
        dialect: Dialect::JsonSchema,
        schema: cleaned,
    }
}

/// Deeper than this is a cycle the `$ref` tracking missed, or an abuse.
const MAX_DEPTH: usize = 48;

const TYPES: &[&str] = &[
    "string", "number", "integer", "boolean", "array", "object", "null",
];

/// Keywords copied as they are when their value has the right JSON type.
const NUMERIC_KEYWORDS: &[&str] = &[
    "minimum",
    "maximum",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "minProperties",
    "maxProperties",
];

struct Cleaner<'r> {
    root: &'r Value,
    dialect: Dialect,
    /// The OpenAPI rewrite lost a free-form object: use the JSON Schema dialect instead.
    lossy: bool,
    /// `$ref`s being inlined, to cut cycles.
    refs: Vec<String>,
}

impl<'r> Cleaner<'r> {
    fn new(root: &'r Value, dialect: Dialect) -> Self {
        Cleaner {
            root,
            dialect,
            lossy: false,
            refs: Vec::new(),
        }
    }

    fn clean(&mut self, node: &Value, depth: usize) -> Value {
        let Some(map) = node.as_object() else {
            // `true` / `false` schemas and junk: "anything".
            return Value::Object(Map::new());
        };
        if depth > MAX_DEPTH {
            return any_object("(nested too deeply to describe)");
        }
        if let Some(reference) = map.get("$ref").and_then(Value::as_str) {
            return self.inline_ref(reference, map, depth);
        }
        if let Some(parts) = map.get("allOf").and_then(Value::as_array) {
            let mut rest = map.clone();
            rest.remove("allOf");
            let mut merged = self.clean(&Value::Object(rest), depth);
            for part in parts {
                let part = self.clean(part, depth + 1);
                merge_schema(&mut merged, part);
            }
            self.fix_object(&mut merged, depth, false);
            return merged;
        }

        let mut out = Map::new();
        let mut nullable = false;
        let mut notes: Vec<String> = Vec::new();

        match map.get("type") {
            Some(Value::String(t)) if TYPES.contains(&t.as_str()) => {
                if t == "null" {
                    nullable = true;
                } else {
                    out.insert("type".into(), Value::String(t.clone()));
                }
            }
            Some(Value::Array(list)) => {
                let names: Vec<&str> = list
                    .iter()
                    .filter_map(Value::as_str)
                    .filter(|t| TYPES.contains(t))
                    .collect();
                nullable = names.contains(&"null");
                let real: Vec<&str> = names.iter().copied().filter(|t| *t != "null").collect();
                match (self.dialect, real.as_slice()) {
                    (_, []) => {}
                    (_, [one]) => {
                        out.insert("type".into(), Value::String((*one).into()));
                    }
                    (Dialect::JsonSchema, _) => {
                        out.insert(
                            "type".into(),
                            Value::Array(real.iter().map(|t| Value::String((*t).into())).collect()),
                        );
                    }
                    (Dialect::OpenApi, many) => {
                        let variants = many
                            .iter()
                            .map(|t| serde_json::json!({ "type": t }))
                            .collect();
                        out.insert("anyOf".into(), Value::Array(variants));
                    }
                }
            }
            _ => {}
        }

        let description = map
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let title = map.get("title").and_then(Value::as_str);
        match self.dialect {
            Dialect::JsonSchema => {
                if let Some(t) = title {
                    out.insert("title".into(), Value::String(t.into()));
                }
            }
            Dialect::OpenApi => {
                // No `title` in the subset; keep its words when there is no description.
                if description.is_none() {
                    if let Some(t) = title {
                        notes.push(t.to_owned());
                    }
                }
            }
        }

        let mut enum_values: Option<Vec<Value>> =
            map.get("enum").and_then(Value::as_array).cloned();
        if let Some(c) = map.get("const") {
            enum_values = Some(vec![c.clone()]);
        }
        if let Some(values) = enum_values {
            if values.iter().any(Value::is_null) {
                nullable = true;
            }
            let values: Vec<Value> = values.into_iter().filter(|v| !v.is_null()).collect();
            let all_strings = values.iter().all(Value::is_string);
            if values.is_empty() {
            } else if all_strings || self.dialect == Dialect::JsonSchema {
                if all_strings && !out.contains_key("type") && !out.contains_key("anyOf") {
                    out.insert("type".into(), Value::String("string".into()));
                }
                out.insert("enum".into(), Value::Array(values));
            } else {
                // The subset's enum is for strings only: say it in words instead.
                let shown: Vec<String> = values.iter().map(|v| v.to_string()).collect();
                notes.push(format!("Allowed values: {}", shown.join(", ")));
            }
        }

        if let Some(format) = map.get("format").and_then(Value::as_str) {
            let ty = out.get("type").and_then(Value::as_str).unwrap_or("");
            let known = match ty {
                "string" => {
                    matches!(format, "date-time" | "enum")
                        || (self.dialect == Dialect::JsonSchema
                            && matches!(format, "date" | "time"))
                }
                "integer" => matches!(format, "int32" | "int64"),
                "number" => matches!(format, "float" | "double"),
                _ => false,
            };
            if known {
                out.insert("format".into(), Value::String(format.into()));
            }
        }

        for key in NUMERIC_KEYWORDS {
            if let Some(v) = map.get(*key).filter(|v| v.is_number()) {
                out.insert((*key).into(), v.clone());
            }
        }
        if let Some(p) = map.get("pattern").filter(|v| v.is_string()) {
            out.insert("pattern".into(), p.clone());
        }
        if let Some(Value::Bool(true)) = map.get("nullable") {
            nullable = true;
        }
        if let Some(order) = map.get("propertyOrdering").filter(|v| v.is_array()) {
            out.insert("propertyOrdering".into(), order.clone());
        }

        if let Some(props) = map.get("properties").and_then(Value::as_object) {
            let cleaned: Map<String, Value> = props
                .iter()
                .map(|(name, schema)| (name.clone(), self.clean(schema, depth + 1)))
                .collect();
            out.insert("properties".into(), Value::Object(cleaned));
        }
        if let Some(required) = map.get("required").and_then(Value::as_array) {
            out.insert(
                "required".into(),
                Value::Array(required.iter().filter(|v| v.is_string()).cloned().collect()),
            );
        }

        match map.get("items") {
            Some(items @ Value::Object(_)) => {
                out.insert("items".into(), self.clean(items, depth + 1));
            }
            Some(Value::Array(tuple)) => {
                if let Some(first) = tuple.first() {
                    out.insert("items".into(), self.clean(first, depth + 1));
                }
            }
            _ => {
                if let Some(first) = map
                    .get("prefixItems")
                    .and_then(Value::as_array)
                    .and_then(|t| t.first())
                {
                    out.insert("items".into(), self.clean(first, depth + 1));
                }
            }
        }

        let variants = map
            .get("anyOf")
            .or_else(|| map.get("oneOf"))
            .and_then(Value::as_array);
        if let Some(variants) = variants {
            let mut kept = Vec::new();
            for v in variants {
                if v.get("type").and_then(Value::as_str) == Some("null") {
                    match self.dialect {
                        Dialect::OpenApi => nullable = true,
                        Dialect::JsonSchema => kept.push(serde_json::json!({ "type": "null" })),
                    }
                } else {
                    kept.push(self.clean(v, depth + 1));
                }
            }
            match kept.len() {
                0 => {}
                1 if self.dialect == Dialect::OpenApi => {
                    if let Some(Value::Object(only)) = kept.pop() {
                        for (k, v) in only {
                            if k == "description" && description.is_some() {
                                continue;
                            }
                            out.entry(k).or_insert(v);
                        }
                    }
                }
                _ => {
                    out.insert("anyOf".into(), Value::Array(kept));
                }
            }
        }

        // Free-form maps.
        let extra = map.get("additionalProperties");
        let patterns = map.get("patternProperties").and_then(Value::as_object);
        let free_form =
            matches!(extra, Some(Value::Object(_)) | Some(Value::Bool(true))) || patterns.is_some();
        if self.dialect == Dialect::JsonSchema {
            match extra {
                Some(Value::Bool(b)) => {
                    out.insert("additionalProperties".into(), Value::Bool(*b));
                }
                Some(schema @ Value::Object(_)) => {
                    out.insert("additionalProperties".into(), self.clean(schema, depth + 1));
                }
                _ => {
                    if let Some(first) = patterns.and_then(|p| p.values().next()) {
                        out.insert("additionalProperties".into(), self.clean(first, depth + 1));
                    }
                }
            }
        }

        if nullable {
            match self.dialect {
                Dialect::OpenApi => {
                    out.insert("nullable".into(), Value::Bool(true));
                }
                Dialect::JsonSchema => add_null_type(&mut out),
            }
        }

        let mut description = description;
        if !notes.is_empty() {
            let extra = notes.join(". ");
            description = Some(match description {
                Some(d) if !d.is_empty() => format!("{d} ({extra})"),
                _ => extra,
            });
        }
        if let Some(d) = description {
            out.insert("description".into(), Value::String(d));
        }

        let mut value = Value::Object(out);
        self.fix_object(&mut value, depth, free_form);
        value
    }

    /// Object-shaped fix-ups: infer a missing type, keep `required` to declared properties,
    /// and notice objects the OpenAPI subset cannot describe.
    fn fix_object(&mut self, value: &mut Value, depth: usize, free_form: bool) {
        let Some(out) = value.as_object_mut() else {
            return;
        };
        if !out.contains_key("type") && !out.contains_key("anyOf") {
            if out.contains_key("properties") {
                out.insert("type".into(), Value::String("object".into()));
            } else if out.contains_key("items") {
                out.insert("type".into(), Value::String("array".into()));
            }
        }
        let is_object = out.get("type").and_then(Value::as_str) == Some("object");
        let declared: Vec<String> = out
            .get("properties")
            .and_then(Value::as_object)
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        if let Some(Value::Array(required)) = out.get_mut("required") {
            required.retain(|r| r.as_str().is_some_and(|r| declared.iter().any(|d| d == r)));
        }
        if out
            .get("required")
            .and_then(Value::as_array)
            .is_some_and(Vec::is_empty)
        {
            out.remove("required");
        }
        if declared.is_empty() && self.dialect == Dialect::OpenApi {
            out.remove("properties");
            if is_object && (depth > 0 || free_form) {
                self.lossy = true;
            }
        }
    }

    fn inline_ref(&mut self, reference: &str, map: &Map<String, Value>, depth: usize) -> Value {
        let target = reference
            .strip_prefix('#')
            .and_then(|pointer| self.root.pointer(pointer));
        let Some(Value::Object(target)) = target else {
            return any_object(&format!("(unresolved reference {reference})"));
        };
        if self.refs.iter().any(|r| r == reference) || self.refs.len() > 16 {
            // A recursive type: describe the recursion instead of unrolling it forever.
            if self.dialect == Dialect::OpenApi {
                self.lossy = true;
            }
            let name = reference.rsplit('/').next().unwrap_or(reference);
            return any_object(&format!("(recursive {name})"));
        }
        let mut merged = target.clone();
        for (k, v) in map {
            if k != "$ref" {
                merged.insert(k.clone(), v.clone());
            }
        }
        self.refs.push(reference.to_owned());
        let out = self.clean(&Value::Object(merged), depth);
        self.refs.pop();
        out
    }
}

fn any_object(description: &str) -> Value {
    serde_json::json!({ "type": "object", "description": description })
}

/// `type: "string"` → `type: ["string", "null"]` (JSON Schema's way to say nullable).
fn add_null_type(out: &mut Map<String, Value>) {
    match out.get_mut("type") {
        Some(Value::String(t)) => {
            let t = std::mem::take(t);
            out.insert("type".into(), serde_json::json!([t, "null"]));
        }
        Some(Value::Array(list)) => list.push(Value::String("null".into())),
        _ => {}
    }
}

/// Merge an `allOf` member into the schema built so far.
fn merge_schema(into: &mut Value, part: Value) {
    let (Some(into), Value::Object(part)) = (into.as_object_mut(), part) else {
        return;
    };
    for (k, v) in part {
        match (k.as_str(), into.get_mut(&k), v) {
            ("properties", Some(Value::Object(have)), Value::Object(add)) => {
                for (name, schema) in add {
                    have.entry(name).or_insert(schema);
                }
            }
            ("required", Some(Value::Array(have)), Value::Array(add)) => {
                for r in add {
                    if !have.contains(&r) {
                        have.push(r);
                    }
                }
            }
            (_, Some(_), _) => {}
            (_, None, v) => {
                into.insert(k, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn openapi_subset_rewrites() {
        let cases: Vec<(&str, Value, Value)> = vec![
            (
                "meta keywords and unknown keywords are dropped",
                json!({"$schema":"http://json-schema.org/draft-07/schema#","type":"object","additionalProperties":false,
                       "properties":{"a":{"type":"string","examples":["x"],"default":"y","minLength":1}},"required":["a"]}),
                json!({"type":"object","properties":{"a":{"type":"string","minLength":1}},"required":["a"]}),
            ),
            (
                "nullable type lists become nullable",
                json!({"type":"object","properties":{"a":{"type":["string","null"]}}}),
                json!({"type":"object","properties":{"a":{"type":"string","nullable":true}}}),
            ),
            (
                "several types become anyOf",
                json!({"type":"object","properties":{"a":{"type":["string","number"]}}}),
                json!({"type":"object","properties":{"a":{"anyOf":[{"type":"string"},{"type":"number"}]}}}),
            ),
            (
                "const becomes a one-value enum",
                json!({"type":"object","properties":{"k":{"const":"add"}}}),
                json!({"type":"object","properties":{"k":{"type":"string","enum":["add"]}}}),
            ),
            (
                "non-string enums move into the description",
                json!({"type":"object","properties":{"n":{"type":"integer","enum":[1,2],"description":"Level"}}}),
                json!({"type":"object","properties":{"n":{"type":"integer","description":"Level (Allowed values: 1, 2)"}}}),
            ),
            (
                "required keeps only declared properties",
                json!({"type":"object","properties":{"a":{"type":"string"}},"required":["a","ghost"]}),
                json!({"type":"object","properties":{"a":{"type":"string"}},"required":["a"]}),
            ),
            (
                "unsupported formats are dropped, known ones kept",
                json!({"type":"object","properties":{"u":{"type":"string","format":"uri"},"t":{"type":"string","format":"date-time"}}}),
                json!({"type":"object","properties":{"u":{"type":"string"},"t":{"type":"string","format":"date-time"}}}),
            ),
            (
                "refs are inlined from $defs",
                json!({"type":"object","properties":{"p":{"$ref":"#/$defs/Point","description":"where"}},
                       "$defs":{"Point":{"type":"object","properties":{"x":{"type":"number"}},"required":["x"]}}}),
                json!({"type":"object","properties":{"p":{"type":"object","description":"where","properties":{"x":{"type":"number"}},"required":["x"]}}}),
            ),
            (
                "allOf is merged",
                json!({"allOf":[{"type":"object","properties":{"a":{"type":"string"}},"required":["a"]},
                                {"properties":{"b":{"type":"integer"}},"required":["b"]}]}),
                json!({"type":"object","properties":{"a":{"type":"string"},"b":{"type":"integer"}},"required":["a","b"]}),
            ),
            (
                "oneOf with null collapses to the other variant",
                json!({"type":"object","properties":{"a":{"oneOf":[{"type":"string"},{"type":"null"}],"description":"d"}}}),
                json!({"type":"object","properties":{"a":{"type":"string","nullable":true,"description":"d"}}}),
            ),
            (
                "anyOf variants are cleaned and kept",
                json!({"type":"object","properties":{"a":{"anyOf":[{"type":"string","maxLength":3},{"type":"array","items":{"type":"string"}}]}}}),
                json!({"type":"object","properties":{"a":{"anyOf":[{"type":"string","maxLength":3},{"type":"array","items":{"type":"string"}}]}}}),
            ),
            (
                "missing types are inferred",
                json!({"properties":{"a":{"items":{"enum":["x","y"]}}}}),
                json!({"type":"object","properties":{"a":{"type":"array","items":{"type":"string","enum":["x","y"]}}}}),
            ),
            (
                "title stands in for a missing description",
                json!({"type":"object","properties":{"a":{"type":"string","title":"Name"}}}),
                json!({"type":"object","properties":{"a":{"type":"string","description":"Name"}}}),
            ),
        ];
        for (name, input, want) in cases {
            let got = clean(&input);
            assert_eq!(got.dialect, Dialect::OpenApi, "{name}");
            assert_eq!(got.schema, want, "{name}");
        }
    }

    #[test]
    fn free_form_maps_switch_to_json_schema() {
        // OpenClaw's `exec` tool: `env` is a string → string map.
        let input = json!({"type":"object","required":["command"],"properties":{
            "command":{"type":"string"},
            "env":{"type":"object","patternProperties":{"^.*$":{"type":"string"}},"description":"Overrides"},
            "host":{"enum":["auto","sandbox"],"type":"string"}}});
        let got = clean(&input);
        assert_eq!(got.dialect, Dialect::JsonSchema);
        assert_eq!(
            got.schema,
            json!({"type":"object","required":["command"],"properties":{
                "command":{"type":"string"},
                "env":{"type":"object","additionalProperties":{"type":"string"},"description":"Overrides"},
                "host":{"type":"string","enum":["auto","sandbox"]}}})
        );
    }

    #[test]
    fn recursive_refs_terminate() {
        let input = json!({"$ref":"#/definitions/Node","definitions":{"Node":{"type":"object","properties":{
            "name":{"type":"string"},"children":{"type":"array","items":{"$ref":"#/definitions/Node"}}}}}});
        let got = clean(&input);
        let text = got.schema.to_string();
        assert!(text.contains("recursive Node"), "{text}");
        assert!(!text.contains("$ref"), "{text}");
    }

    #[test]
    fn parameterless_functions_are_empty_objects() {
        for input in [
            json!({"type":"object","properties":{}}),
            json!({"type":"object"}),
            json!({}),
        ] {
            assert!(clean(&input).is_empty_object(), "{input}");
        }
        assert!(
            !clean(&json!({"type":"object","properties":{"a":{"type":"string"}}}))
                .is_empty_object()
        );
    }
}
