//! Schema parsing, canonical forms and compatibility, per schema type. Everything here is pure:
//! text in, verdicts out.

mod avro;
mod json;
pub mod limits;
mod protobuf;

use std::fmt;

use crate::types::{Compatibility, SchemaType};

/// Why a schema did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaError {
    /// The text is not a valid schema of its type, or exceeds a [`limits`] bound (42201).
    Invalid(String),
    /// No parser could be run (no thread could be started): the schema may well be valid.
    Unavailable(String),
}

impl fmt::Display for SchemaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SchemaError::Invalid(m) | SchemaError::Unavailable(m) => f.write_str(m),
        }
    }
}

/// A referenced schema, resolved: the name it is imported under, its type and text.
#[derive(Debug, Clone)]
pub struct ResolvedReference {
    pub name: String,
    pub schema_type: SchemaType,
    pub schema: String,
}

/// A schema that parsed, ready for comparison.
#[derive(Debug, Clone)]
pub struct ParsedSchema {
    pub schema_type: SchemaType,
    /// The text stored and returned: the submitted schema with insignificant whitespace removed
    /// (Avro, JSON) or as submitted (Protobuf).
    pub canonical: String,
    /// Two schemas with the same identity are the same schema (same id when registered).
    pub identity: String,
    inner: Inner,
}

#[derive(Debug, Clone)]
enum Inner {
    Avro(avro::AvroSchema),
    Json(json::JsonSchema),
    Protobuf(Box<protobuf::ProtoSchema>),
}

/// Parses `schema` of `schema_type`, with the schemas it references: every text is checked
/// against the [`limits`] first, and the parsers run on a thread with a known stack.
pub fn parse(
    schema_type: SchemaType,
    schema: &str,
    references: &[ResolvedReference],
) -> Result<ParsedSchema, SchemaError> {
    limits::check(schema_type, schema).map_err(|e| SchemaError::Invalid(e.to_string()))?;
    for r in references {
        limits::check(r.schema_type, &r.schema)
            .map_err(|e| SchemaError::Invalid(format!("reference '{}': {e}", r.name)))?;
    }
    match limits::on_parser_stack(|| parse_unbounded(schema_type, schema, references)) {
        Ok(parsed) => parsed.map_err(SchemaError::Invalid),
        Err(e @ limits::ParserThreadError::Panicked) => Err(SchemaError::Invalid(e.to_string())),
        Err(e @ limits::ParserThreadError::Spawn(_)) => {
            Err(SchemaError::Unavailable(e.to_string()))
        }
    }
}

/// [`parse`] without its checks, on the caller's stack.
fn parse_unbounded(
    schema_type: SchemaType,
    schema: &str,
    references: &[ResolvedReference],
) -> Result<ParsedSchema, String> {
    debug_assert!(limits::check(schema_type, schema).is_ok());
    match schema_type {
        SchemaType::Avro => {
            let s = avro::parse(schema, references)?;
            let canonical = compact_json(schema);
            Ok(ParsedSchema {
                schema_type,
                identity: canonical.clone(),
                canonical,
                inner: Inner::Avro(s),
            })
        }
        SchemaType::Json => {
            let s = json::parse(schema, references)?;
            let canonical = compact_json(schema);
            Ok(ParsedSchema {
                schema_type,
                identity: canonical.clone(),
                canonical,
                inner: Inner::Json(s),
            })
        }
        SchemaType::Protobuf => {
            let s = protobuf::parse(schema)?;
            Ok(ParsedSchema {
                schema_type,
                identity: s.identity(),
                canonical: schema.trim().to_string(),
                inner: Inner::Protobuf(Box::new(s)),
            })
        }
    }
}

impl ParsedSchema {
    /// The schema as returned by default: Protobuf as `.proto` text, the others as stored.
    pub fn text(&self) -> String {
        match &self.inner {
            Inner::Protobuf(p) => p.text(),
            _ => self.canonical.clone(),
        }
    }

    /// The Protobuf schema as a base64 `FileDescriptorProto` (`?format=serialized`).
    pub fn serialized(&self) -> Option<String> {
        match &self.inner {
            Inner::Protobuf(p) => Some(p.serialized()),
            _ => None,
        }
    }
}

/// Why data written with `writer` cannot be read with `reader`; empty when it can.
pub fn can_read(reader: &ParsedSchema, writer: &ParsedSchema) -> Vec<String> {
    match (&reader.inner, &writer.inner) {
        (Inner::Avro(r), Inner::Avro(w)) => avro::can_read(r, w),
        (Inner::Json(r), Inner::Json(w)) => json::can_read(r, w),
        (Inner::Protobuf(r), Inner::Protobuf(w)) => protobuf::can_read(r, w),
        _ => vec![format!(
            "schema type changed from {} to {}",
            writer.schema_type.name(),
            reader.schema_type.name()
        )],
    }
}

/// Checks `new` against the subject's earlier versions (oldest first) at `level`. Returns the
/// reasons it is incompatible, each naming the version it conflicts with; empty when compatible.
pub fn check(
    level: Compatibility,
    new: &ParsedSchema,
    previous: &[(i32, ParsedSchema)],
) -> Vec<String> {
    if level == Compatibility::None {
        return Vec::new();
    }
    let against: &[(i32, ParsedSchema)] = if level.transitive() {
        previous
    } else {
        previous.last().map(std::slice::from_ref).unwrap_or(&[])
    };
    let mut messages = Vec::new();
    for (version, old) in against.iter().rev() {
        if level.backward() {
            for m in can_read(new, old) {
                messages.push(format!(
                    "{m} (the new schema cannot read data written with version {version}; {})",
                    level.name()
                ));
            }
        }
        if level.forward() {
            for m in can_read(old, new) {
                messages.push(format!(
                    "{m} (version {version} cannot read data written with the new schema; {})",
                    level.name()
                ));
            }
        }
    }
    messages
}

/// JSON text without insignificant whitespace, key order and string contents untouched.
pub fn compact_json(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in text.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !c.is_whitespace() {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested_proto(depth: usize) -> String {
        let open: String = (0..depth).map(|i| format!("message M{i} {{ ")).collect();
        format!("syntax = \"proto3\";\n{open}{}\n", "}".repeat(depth))
    }

    #[test]
    fn the_deepest_accepted_schemas_parse_and_deeper_ones_are_invalid() {
        let depth = limits::MAX_SCHEMA_NESTING_DEPTH;
        let proto = parse(SchemaType::Protobuf, &nested_proto(depth), &[]);
        assert!(proto.is_ok(), "{:?}", proto.err());
        let mut avro = String::from("\"string\"");
        for i in (0..depth / 3).rev() {
            avro = format!(
                "{{\"type\":\"record\",\"name\":\"R{i}\",\"fields\":[{{\"name\":\"f\",\"type\":{avro}}}]}}"
            );
        }
        let parsed = parse(SchemaType::Avro, &avro, &[]);
        assert!(parsed.is_ok(), "{:?}", parsed.err());
        let mut json = String::from("{\"type\":\"string\"}");
        for _ in 0..depth / 2 - 1 {
            json = format!("{{\"type\":\"object\",\"properties\":{{\"a\":{json}}}}}");
        }
        let parsed = parse(SchemaType::Json, &json, &[]);
        assert!(parsed.is_ok(), "{:?}", parsed.err());
        match parse(SchemaType::Protobuf, &nested_proto(800), &[]) {
            Err(SchemaError::Invalid(m)) => assert!(m.contains("nest"), "{m}"),
            other => panic!("{other:?}"),
        }
        // A reference is held to the same bounds.
        let deep_ref = ResolvedReference {
            name: "deep".into(),
            schema_type: SchemaType::Avro,
            schema: "[".repeat(depth + 1),
        };
        assert!(matches!(
            parse(SchemaType::Avro, "\"string\"", &[deep_ref]),
            Err(SchemaError::Invalid(_))
        ));
    }

    #[test]
    fn compact_json_keeps_strings_and_order() {
        assert_eq!(
            compact_json("{ \"b\" : \"x y\\\" z\",\n \"a\": [1, 2] }"),
            "{\"b\":\"x y\\\" z\",\"a\":[1,2]}"
        );
    }
}
