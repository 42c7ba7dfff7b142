//! JSON Schemas: checked against the JSON Schema meta-schema (the `jsonschema` crate), compared
//! with the rules of Confluent's JsonSchemaDiff: the reader must accept every document the
//! writer accepts. Types may widen but not narrow; length, range and item limits may relax but
//! not tighten; enums may grow but not shrink; a property may be removed from an open content
//! model but not from a closed one (`additionalProperties: false`), and may be added to a closed
//! model but not to an open one (old documents may carry it with any value) unless its schema
//! accepts anything; a property may not become required unless it has a default. Local `$ref`s
//! (`#/definitions/...`, `#/$defs/...`) are followed.

use serde_json::{Map, Value};

use super::ResolvedReference;

#[derive(Debug, Clone)]
pub struct JsonSchema {
    root: Value,
}

pub fn parse(text: &str, _references: &[ResolvedReference]) -> Result<JsonSchema, String> {
    let root: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if !root.is_object() && !root.is_boolean() {
        return Err("a JSON Schema must be an object or a boolean".into());
    }
    if let Err(e) = jsonschema::meta::validate(&root) {
        return Err(e.to_string());
    }
    Ok(JsonSchema { root })
}

/// Deepest nesting followed (cyclic `$ref`s stop here).
const MAX_DEPTH: usize = 32;

struct Ctx<'a> {
    reader_root: &'a Value,
    writer_root: &'a Value,
    out: Vec<String>,
}

fn resolve<'a>(root: &'a Value, v: &'a Value) -> &'a Value {
    let mut v = v;
    for _ in 0..MAX_DEPTH {
        let Some(r) = v.get("$ref").and_then(Value::as_str) else {
            return v;
        };
        let Some(pointer) = r.strip_prefix('#') else {
            return v;
        };
        match root.pointer(pointer) {
            Some(t) => v = t,
            None => return v,
        }
    }
    v
}

fn types(v: &Value) -> Option<Vec<String>> {
    match v.get("type")? {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(a) => Some(
            a.iter()
                .filter_map(|t| t.as_str().map(String::from))
                .collect(),
        ),
        _ => None,
    }
}

fn accepts_anything(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Object(m) => m.keys().all(|k| {
            matches!(
                k.as_str(),
                "title" | "description" | "$comment" | "default" | "examples" | "$id" | "$schema"
            )
        }),
        _ => false,
    }
}

fn num(v: &Value, k: &str) -> Option<f64> {
    v.get(k).and_then(Value::as_f64)
}

/// The additionalProperties of an object schema: None = open, Some(false) = closed.
fn additional(v: &Value) -> Option<&Value> {
    v.get("additionalProperties")
        .filter(|a| !matches!(a, Value::Bool(true)))
}

fn props(v: &Value) -> Map<String, Value> {
    v.get("properties")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default()
}

fn required(v: &Value) -> Vec<String> {
    v.get("required")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

impl Ctx<'_> {
    fn diff(&mut self, path: &str, writer: &Value, reader: &Value, depth: usize) {
        if depth > MAX_DEPTH {
            return;
        }
        let w = resolve(self.writer_root, writer);
        let r = resolve(self.reader_root, reader);
        if accepts_anything(r) || w == r {
            return;
        }
        if matches!(w, Value::Bool(false)) {
            return;
        }
        if accepts_anything(w) {
            self.out.push(format!(
                "TYPE_NARROWED at {path}: the reader no longer accepts every value"
            ));
            return;
        }
        let path = if path.is_empty() { "#" } else { path };
        match (types(w), types(r)) {
            (Some(wt), Some(rt)) => {
                let missing: Vec<&String> = wt
                    .iter()
                    .filter(|t| {
                        !(rt.contains(t)
                            || t.as_str() == "integer" && rt.iter().any(|x| x == "number"))
                    })
                    .collect();
                if !missing.is_empty() {
                    self.out
                        .push(format!("TYPE_CHANGED at {path}: {wt:?} became {rt:?}"));
                    return;
                }
            }
            (None, Some(rt)) => {
                self.out
                    .push(format!("TYPE_NARROWED at {path}: any type became {rt:?}"));
                return;
            }
            _ => {}
        }
        let tighter_max = |k: &str, out: &mut Vec<String>| match (num(w, k), num(r, k)) {
            (Some(a), Some(b)) if b < a => out.push(format!(
                "{}_DECREASED at {path}: {k} {a} became {b}",
                k.to_uppercase()
            )),
            (None, Some(b)) => out.push(format!("{}_ADDED at {path}: {k} {b}", k.to_uppercase())),
            _ => {}
        };
        let tighter_min = |k: &str, out: &mut Vec<String>| match (num(w, k), num(r, k)) {
            (Some(a), Some(b)) if b > a => out.push(format!(
                "{}_INCREASED at {path}: {k} {a} became {b}",
                k.to_uppercase()
            )),
            (None, Some(b)) => out.push(format!("{}_ADDED at {path}: {k} {b}", k.to_uppercase())),
            _ => {}
        };
        for k in [
            "maxLength",
            "maximum",
            "exclusiveMaximum",
            "maxItems",
            "maxProperties",
        ] {
            tighter_max(k, &mut self.out);
        }
        for k in [
            "minLength",
            "minimum",
            "exclusiveMinimum",
            "minItems",
            "minProperties",
        ] {
            tighter_min(k, &mut self.out);
        }
        for k in ["pattern", "multipleOf", "const", "format"] {
            if let Some(rv) = r.get(k) {
                if w.get(k) != Some(rv) {
                    self.out.push(format!(
                        "{}_CHANGED at {path}: {k} is now {rv}",
                        k.to_uppercase()
                    ));
                }
            }
        }
        if let Some(re) = r.get("enum").and_then(Value::as_array) {
            match w.get("enum").and_then(Value::as_array) {
                Some(we) => {
                    if we.iter().any(|x| !re.contains(x)) {
                        self.out.push(format!("ENUM_ARRAY_NARROWED at {path}"));
                    }
                }
                None => self.out.push(format!("ENUM_ARRAY_ADDED at {path}")),
            }
        }
        if r.get("uniqueItems") == Some(&Value::Bool(true))
            && w.get("uniqueItems") != Some(&Value::Bool(true))
        {
            self.out.push(format!("UNIQUE_ITEMS_ADDED at {path}"));
        }
        // Objects.
        let (wp, rp) = (props(w), props(r));
        let (wadd, radd) = (additional(w), additional(r));
        for (name, ws) in &wp {
            let at = format!("{path}/properties/{name}");
            match rp.get(name) {
                Some(rs) => self.diff(&at, ws, rs, depth + 1),
                None => match radd {
                    None => {}
                    Some(Value::Bool(false)) => self.out.push(format!(
                        "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL at {at}"
                    )),
                    Some(schema) => {
                        let before = self.out.len();
                        self.diff(&at, ws, schema, depth + 1);
                        if self.out.len() > before {
                            self.out.truncate(before);
                            self.out.push(format!(
                                "PROPERTY_REMOVED_NOT_COVERED_BY_PARTIALLY_OPEN_CONTENT_MODEL at {at}"
                            ));
                        }
                    }
                },
            }
        }
        let (wreq, rreq) = (required(w), required(r));
        for (name, rs) in &rp {
            if wp.contains_key(name) {
                continue;
            }
            let at = format!("{path}/properties/{name}");
            match wadd {
                None => {
                    if !accepts_anything(resolve(self.reader_root, rs)) {
                        self.out
                            .push(format!("PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL at {at}"));
                    }
                }
                Some(Value::Bool(false)) => {}
                Some(schema) => self.diff(&at, schema, rs, depth + 1),
            }
        }
        for name in &rreq {
            if wreq.contains(name) {
                continue;
            }
            let has_default = rp.get(name).is_some_and(|s| s.get("default").is_some());
            if !has_default {
                self.out.push(format!(
                    "REQUIRED_ATTRIBUTE_ADDED at {path}/properties/{name}"
                ));
            }
        }
        match (wadd, radd) {
            (None, Some(Value::Bool(false))) => self
                .out
                .push(format!("ADDITIONAL_PROPERTIES_REMOVED at {path}")),
            (Some(ws), Some(rs)) if !matches!(ws, Value::Bool(false)) => {
                self.diff(&format!("{path}/additionalProperties"), ws, rs, depth + 1)
            }
            (None, Some(rs)) if !accepts_anything(rs) => self
                .out
                .push(format!("ADDITIONAL_PROPERTIES_NARROWED at {path}")),
            _ => {}
        }
        // Arrays.
        if let (Some(wi), Some(ri)) = (w.get("items"), r.get("items")) {
            if wi.is_object() || wi.is_boolean() {
                self.diff(&format!("{path}/items"), wi, ri, depth + 1);
            }
        } else if let (None, Some(ri)) = (w.get("items"), r.get("items")) {
            if !accepts_anything(ri) {
                self.out.push(format!("ITEMS_NARROWED at {path}"));
            }
        }
        // Combined schemas: every writer alternative must be accepted by some reader alternative.
        for k in ["oneOf", "anyOf"] {
            if let Some(ra) = r.get(k).and_then(Value::as_array) {
                let walts: Vec<Value> = match w.get(k).and_then(Value::as_array) {
                    Some(a) => a.clone(),
                    None => vec![w.clone()],
                };
                for (i, wa) in walts.iter().enumerate() {
                    let fits = ra.iter().any(|rb| {
                        let mut sub = Ctx {
                            reader_root: self.reader_root,
                            writer_root: self.writer_root,
                            out: Vec::new(),
                        };
                        sub.diff(path, wa, rb, depth + 1);
                        sub.out.is_empty()
                    });
                    if !fits {
                        self.out.push(format!(
                            "COMBINED_TYPE_SUBSCHEMAS_CHANGED at {path}/{k}/{i}"
                        ));
                    }
                }
            }
        }
    }
}

/// Why `reader` rejects documents `writer` accepts; empty when it accepts them all.
pub fn can_read(reader: &JsonSchema, writer: &JsonSchema) -> Vec<String> {
    let mut ctx = Ctx {
        reader_root: &reader.root,
        writer_root: &writer.root,
        out: Vec::new(),
    };
    ctx.diff("", &writer.root, &reader.root, 0);
    ctx.out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> JsonSchema {
        parse(s, &[]).unwrap()
    }

    #[test]
    fn confluents_json_rules() {
        let closed = p(
            r#"{"type":"object","properties":{"a":{"type":"string"}},"additionalProperties":false}"#,
        );
        let closed_plus = p(
            r#"{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"integer"}},"additionalProperties":false}"#,
        );
        let closed_plus_req = p(
            r#"{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"integer"}},"required":["b"],"additionalProperties":false}"#,
        );
        let open = p(r#"{"type":"object","properties":{"a":{"type":"string"}}}"#);
        let open_plus =
            p(r#"{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"integer"}}}"#);
        let retyped = p(
            r#"{"type":"object","properties":{"a":{"type":"integer"}},"additionalProperties":false}"#,
        );
        let short = p(
            r#"{"type":"object","properties":{"a":{"type":"string","maxLength":5}},"additionalProperties":false}"#,
        );
        // New reader, old writer (BACKWARD).
        assert!(can_read(&closed_plus, &closed).is_empty());
        assert!(!can_read(&closed_plus_req, &closed).is_empty());
        assert!(!can_read(&open_plus, &open).is_empty());
        assert!(can_read(&open, &open_plus).is_empty());
        assert!(!can_read(&closed, &closed_plus).is_empty());
        assert!(!can_read(&retyped, &closed).is_empty());
        assert!(!can_read(&short, &closed).is_empty());
        assert!(can_read(&closed, &short).is_empty());
        assert!(parse("[1]", &[]).is_err());
        assert!(parse(r#"{"type": 5}"#, &[]).is_err());
    }
}
